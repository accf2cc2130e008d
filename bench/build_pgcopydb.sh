#!/bin/sh
# Build pgcopydb from its public source (tag v0.18) for bench/peers.py, which runs it as
# `pgcopydb-0.18` from PATH next to Debian's 0.10 (`pgcopydb`). None of its code goes into pgshift.
#
#   bench/build_pgcopydb.sh SRC_DIR [DEST]     (DEST: /usr/local/bin/pgcopydb-0.18)
#
# SRC_DIR is a checkout of pgcopydb v0.18. It vendors SQLite's amalgamation
# (src/bin/lib/sqlite/sqlite3.c, 9 MB); a copy without it (a mirror that leaves large files out)
# gets the amalgamation shipped in the npm package better-sqlite3 11 (SQLite 3.49). Debian 12's
# libsqlite3 (3.40) is too old: pgcopydb 0.18 uses ORDER BY inside aggregates (SQLite 3.44), and a
# build linked against it fails its first COPY with 'near "order": syntax error'.
# Built against Debian's PostgreSQL 15 headers and libpq; about a minute on 2 cores.
set -eu
src=${1:?usage: $0 SRC_DIR [DEST]}
dest=${2:-/usr/local/bin/pgcopydb-0.18}
pg_config=/usr/lib/postgresql/15/bin/pg_config

if [ "$(id -u)" = 0 ]; then
    apt-get install -y --no-install-recommends build-essential postgresql-server-dev-15 libpq-dev \
        libgc-dev libedit-dev libkrb5-dev liblz4-dev libncurses-dev libpam0g-dev libreadline-dev \
        libselinux1-dev libssl-dev libxslt1-dev libzstd-dev zlib1g-dev >/dev/null
fi

sqlite=$src/src/bin/lib/sqlite
if [ ! -s "$sqlite/sqlite3.c" ]; then
    tmp=$(mktemp -d)
    (cd "$tmp" && npm pack --silent better-sqlite3@11 >/dev/null && tar -xzf better-sqlite3-*.tgz package/deps/sqlite3)
    cp "$tmp"/package/deps/sqlite3/sqlite3.c "$tmp"/package/deps/sqlite3/sqlite3.h \
        "$tmp"/package/deps/sqlite3/sqlite3ext.h "$sqlite/"
    rm -rf "$tmp"
fi

# A tree without git metadata or executable bits (an archive, a mirror): version from DEF_VER.
chmod +x "$src/GIT-VERSION-GEN"
make -C "$src" -j"$(nproc)" PG_CONFIG="$pg_config" >/dev/null
install -m 755 "$src/src/bin/pgcopydb/pgcopydb" "$dest"
"$dest" version 2>/dev/null | head -1
