"""Where pgshift keeps things: the toolchain cache, work directories, lab clusters."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import platformdirs


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def cache_dir() -> Path:
    """Downloaded PostgreSQL binaries. ``PGSHIFT_CACHE_DIR`` overrides.

    When run as root the cache lives in /var/cache/pgshift rather than under /root: lab servers
    run as an unprivileged user, who must be able to execute these binaries.
    """
    override = os.environ.get("PGSHIFT_CACHE_DIR")
    if override:
        return Path(override)
    if _is_root():
        return Path("/var/cache/pgshift")
    return Path(platformdirs.user_cache_dir("pgshift"))


def state_dir() -> Path:
    """pgshift's state: migration work directories (``runs/<timestamp>``) and check's work directory.

    ``PGSHIFT_STATE_DIR`` overrides; otherwise ``$XDG_STATE_HOME/pgshift`` (``~/.local/state/pgshift``).
    The test suite points both at a directory of its own run (tests/conftest.py).
    """
    override = os.environ.get("PGSHIFT_STATE_DIR")
    if override:
        return Path(override)
    return Path(platformdirs.user_state_dir("pgshift"))


def lab_root() -> Path:
    """Parent of throwaway clusters: world-traversable so the unprivileged server user can reach them."""
    override = os.environ.get("PGSHIFT_LAB_DIR")
    if override:
        return Path(override)
    return Path(tempfile.gettempdir()) / f"pgshift-lab-{os.geteuid() if hasattr(os, 'geteuid') else 0}"


def private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) with mode 0700."""
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o700)
    return path
