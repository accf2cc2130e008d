"""SQL for sample databases: an empty database to load a corpus sample into."""

from __future__ import annotations

from psycopg import sql

from pgshift.catalog.session import Connection, fetch_one


def database_exists(conn: Connection, name: str) -> bool:
    return fetch_one(conn, "SELECT 1 AS found FROM pg_database WHERE datname = %s", (name,)) is not None


def create_empty_database(conn: Connection, name: str) -> None:
    """CREATE DATABASE from template0 with the server's default encoding and locale."""
    conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(name)))
