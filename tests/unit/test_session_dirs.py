"""The test run keeps out of the user's state and config directories (tests/conftest.py), and keeps
the shared download cache."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from pgshift import paths
from tests.conftest import SESSION_DIR_VAR


def _session_dir() -> Path:
    value = os.environ.get(SESSION_DIR_VAR)
    assert value, "tests/conftest.py sets up a directory of this test run"
    return Path(value)


def test_state_dir_is_the_runs_own_directory() -> None:
    session = _session_dir()
    assert paths.state_dir().is_relative_to(session)
    assert not paths.state_dir().is_relative_to(Path.home())


def test_a_child_without_pgshift_variables_still_writes_state_into_the_runs_directory() -> None:
    # As tests/cli/test_toolchain_cli.py runs pgshift: every PGSHIFT_* variable removed.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PGSHIFT_")}
    probe = "import json; from pgshift import paths as p; print(json.dumps([str(p.state_dir()), str(p.cache_dir())]))"
    done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
    state, cache = (Path(p) for p in json.loads(done.stdout))
    assert state.is_relative_to(_session_dir())
    # The binary cache is shared between runs on purpose (downloads): the same directory either way.
    assert cache.resolve() == paths.cache_dir().resolve()
    assert not paths.cache_dir().resolve().is_relative_to(_session_dir())
