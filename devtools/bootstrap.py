"""Get a machine ready to run the project: create the database if it is missing.

`python -m devtools.bootstrap` (the Makefile runs it): connects to the server named by
DATABASE_URL, through its `postgres` maintenance database, and creates ours if absent.
"""

from __future__ import annotations

import os
import sys

import environ
import psycopg
from psycopg import sql

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/campaign"


def ensure_database(url: str) -> bool:
    """Create the database named in `url` unless it exists. True when it was created."""
    config = environ.Env.db_url_config(url)
    params = {
        "host": config.get("HOST") or config.get("OPTIONS", {}).get("host"),
        "port": config.get("PORT") or None,
        "user": config.get("USER") or None,
        "password": config.get("PASSWORD") or None,
        "dbname": "postgres",
        "connect_timeout": 5,
    }
    name = config["NAME"]
    with psycopg.connect(**{k: v for k, v in params.items() if v}, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if exists:
            return False
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return True


def main() -> int:
    url = os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL)
    try:
        created = ensure_database(url)
    except psycopg.OperationalError as exc:
        print(f"PostgreSQL is not answering at {url.split('@')[-1]}: {exc}", file=sys.stderr)
        print("Start it, or set DATABASE_URL to one that runs (see README).", file=sys.stderr)
        return 1
    print(f"database {'created' if created else 'ready'}: {environ.Env.db_url_config(url)['NAME']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
