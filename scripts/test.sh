#!/usr/bin/env bash
# Sets up everything the test suite needs on a fresh Debian machine, then runs it:
# system packages, a virtualenv with pgshift and its dev tools, PostgreSQL 10–18 lab binaries
# (cached in pgshift's cache between runs), a Docker daemon for the docker tests, then
# ruff, mypy and pytest. Run from the repository root, as root on CI machines.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n=== %s\n' "$*"; }

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  log "system packages"
  need=()
  dpkg -s libossp-uuid16 >/dev/null 2>&1 || need+=(libossp-uuid16)
  command -v npm >/dev/null || need+=(npm)
  command -v openssl >/dev/null || need+=(openssl)
  command -v dockerd >/dev/null || need+=(docker.io)
  command -v chromium >/dev/null || need+=(chromium)  # renders check's HTML report in tests
  if [ ${#need[@]} -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  fi
fi

log "python environment"
python3 -m venv .venv
. .venv/bin/activate
python -m pip install -q --disable-pip-version-check -e ".[dev]"

log "PostgreSQL binaries 10-18"
for major in 14 15 16 17 18; do pgshift toolchain install "$major" -q; done
python -m pgshift.lab 10 11 12 13

# Asks the daemon itself: a socket file can outlive its daemon.
docker_up() { command -v docker >/dev/null && docker version >/dev/null 2>&1; }
if [ "$(id -u)" = 0 ] && command -v dockerd >/dev/null && ! docker_up; then
  log "docker daemon"
  (dockerd --iptables=false --ip-forward=false --storage-driver=vfs >/tmp/pgshift-dockerd.log 2>&1 &)
  for _ in $(seq 1 120); do docker_up && break; sleep 0.5; done
  if ! docker_up; then
    echo "WARNING: dockerd did not come up; the docker tests will be skipped. Its log:" >&2
    tail -n 20 /tmp/pgshift-dockerd.log >&2 || true
  fi
fi

log "ruff"
ruff check src tests
log "mypy"
mypy
log "pytest"
python -m pytest -n 2 "$@"
