"""The pgshift container's start: the sample database into the old server (once), a check, then wait.

Runs inside pgshift/pgshift:lab; SOURCE, TARGET and SAMPLE come from upgrade-lab.yml.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from pgshift.catalog.samples import database_exists
from pgshift.catalog.session import session
from pgshift.conninfo import Endpoint
from pgshift.lab import corpus

source, target, sample = os.environ["SOURCE"], os.environ["TARGET"], os.environ.get("SAMPLE", "pagila")
endpoint = Endpoint.parse(source, "source")
with session(endpoint) as conn:
    loaded = database_exists(conn, sample)
if loaded:
    print(f"lab: the {sample} sample is already in the old server", flush=True)
else:
    result = corpus.load(endpoint, sample, sample, create=True)
    print(f"lab: loaded the {sample} sample into the old server in {result.seconds:.1f}s", flush=True)
subprocess.run(["pgshift", "check", source, target], check=False)
print("lab: ready. Move it with compose/lab.sh migrate, compare with compose/lab.sh verify", flush=True)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
signal.pause()
