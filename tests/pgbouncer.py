"""A real PgBouncer (Debian's, 1.18 on Debian 12) in transaction pooling before the tests'
PostgreSQL, started from a generated ini in a directory of its own: the settings the app
needs from it are the ones docs/pgbouncer.md lists."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from tests import stack

PGBOUNCER = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
MISSING = "needs Debian's pgbouncer (`make pgbouncer` or `apt-get install pgbouncer`)"
# What the web's alias runs on each server connection it opens (config/wsgi.py's default).
WEB_LOCK_TIMEOUT_MS = 2000


def require() -> None:
    """Skip without pgbouncer, but fail in CI, which installs it (.ci/run)."""
    if not Path(PGBOUNCER).exists():
        if os.environ.get("CI"):
            pytest.fail(MISSING)
        pytest.skip(MISSING)


@dataclass(frozen=True)
class Pooler:
    port: int
    user: str
    workers_db: str  # the alias the workers use: no session settings
    web_db: str  # the web's alias: lock_timeout set on each server connection

    @property
    def aliases(self) -> tuple[str, str]:
        return (self.workers_db, self.web_db)

    def url(self, db: str) -> str:
        return f"postgres://{self.user}@127.0.0.1:{self.port}/{db}"

    def admin(self, command: str) -> list[tuple[object, ...]]:
        """A command on PgBouncer's admin console (SHOW POOLS, ...)."""
        # The console speaks the simple query protocol only: a client-side binding cursor.
        url = self.url("pgbouncer")
        with psycopg.connect(url, autocommit=True, cursor_factory=psycopg.ClientCursor) as conn:
            return conn.execute(command).fetchall()


def _ini(
    *,
    auth_file: Path,
    port: int,
    host: str,
    pg_port: int,
    dbname: str,
    user: str,
    password: str,
    pool_size: int,
) -> str:
    target = f"host={host} port={pg_port} dbname={dbname} user={user}"
    if password:
        target += f" password={password}"
    return f"""\
[databases]
{dbname}_workers = {target}
{dbname}_web = {target} connect_query='SET lock_timeout = {WEB_LOCK_TIMEOUT_MS}'

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {auth_file}
admin_users = {user}
pool_mode = transaction
default_pool_size = {pool_size}
min_pool_size = 0
reserve_pool_size = 0
max_client_conn = 200
server_reset_query =
server_lifetime = 3600
query_wait_timeout = 30
log_connections = 0
log_disconnections = 0
"""


def _unprivileged_user(host: str) -> str:
    """Who PgBouncer runs as when started by root (it refuses to stay root): the owner of the
    server's socket directory when the database is reached by a socket (the embedded server
    of devtools.services keeps it in its own 0700 data directory), else postgres."""
    if host.startswith("/"):
        return pwd.getpwuid(Path(host).stat().st_uid).pw_name
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return "nobody"
    return "postgres"


@contextmanager
def running(
    *, database: dict, pool_size: int, log_path: Path, port: int | None = None
) -> Iterator[Pooler]:
    """PgBouncer before `database` (Django's settings_dict of the tests' database), each pool
    (database alias and user) `pool_size` server connections; stopped and its files removed
    after."""
    require()
    port = port or int(os.environ.get("TEST_PGBOUNCER_PORT", "0")) or stack.free_port()
    user = database["USER"] or "postgres"
    workdir = Path(tempfile.mkdtemp(prefix="pgbouncer-test-"))
    workdir.chmod(0o755)  # PgBouncer drops root for postgres, and re-reads its files as such
    ini = workdir / "pgbouncer.ini"
    # the embedded server of devtools.services listens on a socket directory
    host = database.get("OPTIONS", {}).get("host") or database.get("HOST") or "127.0.0.1"
    ini.write_text(
        _ini(
            auth_file=workdir / "userlist.txt",
            port=port,
            host=host,
            pg_port=int(database.get("PORT") or 5432),
            dbname=database["NAME"],
            user=user,
            password=database.get("PASSWORD") or "",
            pool_size=pool_size,
        )
    )
    (workdir / "userlist.txt").write_text(f'"{user}" ""\n')
    as_user = ["-u", _unprivileged_user(host)] if os.geteuid() == 0 else []
    command = [PGBOUNCER, *as_user, str(ini)]
    process = stack.spawn(command, log_path)
    name = database["NAME"]
    pooler = Pooler(port=port, user=user, workers_db=f"{name}_workers", web_db=f"{name}_web")

    def ready() -> bool:
        try:
            pooler.admin("SHOW VERSION")
        except psycopg.OperationalError:
            return False
        return True

    try:
        stack.wait_until(ready, process, log_path, "pgbouncer")
        yield pooler
    finally:
        stack.stop(process, sig=signal.SIGINT)  # SIGINT: at once (SIGTERM waits for clients)
        shutil.rmtree(workdir, ignore_errors=True)
