"""Several hosts on one machine, as production runs them (docs/cluster.md): `make cluster`,
`python -m devtools.cluster [--hosts N] [--port P]`.

- h1..hN (default 3): each a network namespace with its own address on the run's bridge
  (devtools/netns.py), running gunicorn and one Celery worker per queue from the project's
  process table (devtools/processes.py), beat included (RedBeat: one schedules).
- db: a private PostgreSQL (initdb into .run/cluster/<port>/, the machine's
  /usr/lib/postgresql/*/bin), PgBouncer before it (deploy/pgbouncer.ini, %included by the
  generated file), the state Redis, the broker Redis and the sandbox payment gateway.
- HAProxy in the root namespace on 127.0.0.1:<port>, running deploy/haproxy.cfg with this
  run's server lines at its `# @servers` marker, reaching the hosts over the bridge.

Where namespaces cannot be made (not root, no `ip`) it says so and runs every place on
127.0.0.1 with ports of its own (<port>+1...). Processes are started and stopped as
devtools/stack.py does (`make run`): each in its own session, one SIGTERM each, SIGKILL at
the deadline. Everything it made is removed on stop, and a new run first removes what a
crashed one left (devtools/netns.py).
"""

from __future__ import annotations

import contextlib
import csv
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg

from devtools import netns
from devtools.netns import Net, Place
from devtools.processes import PY, ROOT, Layout, Process, Sandbox, sandbox_argv, table
from devtools.stack import Stop, answering, stop_all, wait_gone
from devtools.stack import start as start_process

# Where beat runs. Beat is RedBeat under a Redis lock (infra/beat.py), safe on every host:
# one schedules, another takes over when it is lost. True puts it on h1 alone.
BEAT_ON_FIRST_HOST_ONLY = False
DATABASE = "campaign"
HAPROXY_CFG = ROOT / "deploy" / "haproxy.cfg"
PGBOUNCER_INI = ROOT / "deploy" / "pgbouncer.ini"
SERVERS_MARKER = "# @servers"
START_SECONDS = 90.0
WEB_PROCESSES = 1  # gunicorn processes per host (two threads each): hosts share the cores
QUEUE_MS = 100  # HAProxy's queue budget (timeout queue, and the wait past which it refuses at once)
WEB_LOCK_TIMEOUT_MS = 2000  # config/wsgi.py's DB_LOCK_TIMEOUT_MS, set by the web's alias


def pg_bin() -> Path:
    """The machine's newest PostgreSQL server binaries (Debian: /usr/lib/postgresql/N/bin)."""
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/postgres"), key=lambda p: int(p.parts[-3])
    )
    if not found:
        raise RuntimeError("no PostgreSQL server in /usr/lib/postgresql/*/bin (apt: postgresql)")
    return found[-1].parent


def as_postgres(argv: tuple[str, ...]) -> tuple[str, ...]:
    """PostgreSQL and PgBouncer refuse to run as root: run them as the `postgres` user."""
    if os.geteuid() != 0:
        return argv
    return ("setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", *argv)


@dataclass(frozen=True)
class Ports:
    """A place's ports: fixed inside a namespace (it has its own), from the run's port on
    loopback, where every place shares 127.0.0.1."""

    postgres: int
    pgbouncer: int
    redis: int
    broker: int
    sandbox: int
    web: int
    worker_metrics: int


def ports(base: int, place: str, *, namespaces: bool) -> Ports:
    if namespaces:
        return Ports(5432, 6432, 6379, 6380, 8765, 8000, 9101)
    host = 0 if place == "db" else int(place.removeprefix("h"))
    return Ports(
        base + 1, base + 2, base + 3, base + 4, base + 5, base + 10 + host, base + 20 + 4 * host
    )


class Cluster:
    """The whole cluster: `start()`, `stop()`, and a host's `kill`/`revive`/`drain`/`restart`."""

    def __init__(
        self,
        *,
        hosts: int = 3,
        port: int = 8090,
        run_dir: Path | None = None,
        env: dict[str, str] | None = None,
        namespaces: bool | None = None,
        sandbox_latency_ms: int = 20,
    ) -> None:
        self.hosts = [f"h{i}" for i in range(1, hosts + 1)]
        self.port = port
        self.run_dir = run_dir or ROOT / ".run" / "cluster" / str(port)
        self.logs = self.run_dir / "logs"
        self.why_loopback = "" if namespaces else ("asked for" if namespaces is False else "")
        if namespaces is None:
            self.why_loopback = netns.why_no_namespaces()
        self.net = Net(port, namespaces=not self.why_loopback)
        self.extra_env = env or {}
        self.sandbox_latency_ms = sandbox_latency_ms
        self.sandbox_key = secrets.token_hex(12)  # not token_urlsafe: a leading "-" reads as a flag
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.env: dict[str, str] = {}

    # --- addresses --------------------------------------------------------------------------

    def ports(self, place: str) -> Ports:
        return ports(self.port, place, namespaces=self.net.namespaces)

    @property
    def db(self) -> Place:
        return self.net.places["db"]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def stats_url(self) -> str:
        return f"http://127.0.0.1:{self.port + 6}/stats"

    @property
    def postgres_url(self) -> str:
        """PostgreSQL itself, not through PgBouncer (migrations, checks)."""
        return f"postgres://postgres@{self.db.address}:{self.ports('db').postgres}/{DATABASE}"

    @property
    def sandbox_url(self) -> str:
        return f"http://{self.db.address}:{self.ports('db').sandbox}"

    def web_url(self, host: str) -> str:
        return f"http://{self.net.places[host].address}:{self.ports(host).web}"

    def drain_file(self, host: str) -> Path:
        return self.run_dir / "drain" / host

    # --- starting ---------------------------------------------------------------------------

    def start(self) -> None:
        """Sweep stale runs, make the network, start the engines, migrate, start the hosts
        and HAProxy, and wait until HAProxy sees every host up."""
        netns.sweep_stale()
        netns.remove(self.port)  # a run of ours that died on this very port
        netns.claim(self.port)
        shutil.rmtree(self.run_dir, ignore_errors=True)
        for sub in ("logs", "drain", "pg", "redis"):
            (self.run_dir / sub).mkdir(parents=True)
        self.net.up(["db", *self.hosts])
        self._engines()
        self.env = self._app_env()
        subprocess.run(
            [PY, "manage.py", "migrate", "--no-input", "-v", "0"],
            cwd=ROOT,
            env={**self.env, "DATABASE_URL": self.postgres_url},
            check=True,
        )
        for host in self.hosts:
            self.start_host(host, wait=False)
        self._haproxy()
        for host in self.hosts:
            self.wait_host(host)
        self.wait_servers(up=set(self.hosts))

    def _spawn(self, place: Place, process: Process, env: dict[str, str]) -> None:
        name = f"{place.name}-{process.name}"
        wrapped = Process(name, place.wrap(process.argv), process.env)
        proc = start_process(wrapped, env, logs=self.logs)
        self.procs[name] = proc
        if place.netns is None:
            netns.remember(self.port, proc.pid)

    def _engines(self) -> None:
        db = self.db
        p = self.ports("db")
        pgdata, sock = self.run_dir / "pg" / "data", self.run_dir / "pg" / "run"
        sock.mkdir()
        if os.geteuid() == 0:
            shutil.chown(self.run_dir / "pg", "postgres", "postgres")
            shutil.chown(sock, "postgres", "postgres")
        initdb = (str(pg_bin() / "initdb"), "-D", str(pgdata), "-U", "postgres")
        subprocess.run(
            as_postgres((*initdb, "--auth=trust", "-E", "UTF8", "--no-sync")),
            check=True,
            capture_output=True,
        )
        with (pgdata / "pg_hba.conf").open("a") as hba:
            hba.write(f"host all all {db.address}/24 trust\n")
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        postgres = (str(pg_bin() / "postgres"), "-D", str(pgdata), "-p", str(p.postgres))
        settings = {
            "listen_addresses": db.address,
            "unix_socket_directories": str(sock),
            "fsync": "off",  # a throwaway cluster: speed over durability
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_connections": "200",
            "timezone": "UTC",  # Django then sends no SET TIME ZONE (docs/pgbouncer.md)
        }
        postgres += tuple(a for k, v in settings.items() for a in ("-c", f"{k}={v}"))
        self._spawn(db, Process("postgres", as_postgres(postgres)), env)
        self._wait(lambda: self._pg_answers("postgres"), "postgres")
        with psycopg.connect(self._pg_dsn("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{DATABASE}"')
        ini = self.run_dir / "pg" / "pgbouncer.ini"
        ini.write_text(self._pgbouncer_ini(sock))
        shutil.chown(ini, "postgres") if os.geteuid() == 0 else None
        self._spawn(db, Process("pgbouncer", as_postgres(("pgbouncer", str(ini)))), env)
        for name, port in (("redis", p.redis), ("broker", p.broker)):
            argv = (shutil.which("redis-server") or "redis-server", "--bind", db.address)
            argv += ("--port", str(port), "--save", "", "--appendonly", "no")
            argv += ("--protected-mode", "no", "--dir", str(self.run_dir / "redis"))
            self._spawn(db, Process(name, argv), env)
        sandbox = Sandbox(
            port=p.sandbox,
            host=db.address,
            latency_ms=self.sandbox_latency_ms,
            key=self.sandbox_key,
        )
        self._spawn(db, Process("sandbox", sandbox_argv(sandbox)), env)
        for what, port in (("pgbouncer", p.pgbouncer), ("redis", p.redis), ("broker", p.broker)):
            self._wait(lambda port=port: _tcp(db.address, port), what)
        self._wait(lambda: _tcp(db.address, p.sandbox), "sandbox")

    def _pg_dsn(self, dbname: str) -> str:
        return (
            f"host={self.db.address} port={self.ports('db').postgres} user=postgres dbname={dbname}"
        )

    def _pg_answers(self, dbname: str) -> bool:
        try:
            with psycopg.connect(self._pg_dsn(dbname), connect_timeout=1):
                return True
        except psycopg.Error:
            return False

    def _pgbouncer_ini(self, sock: Path) -> str:
        p, db = self.ports("db"), self.db
        server = f"host={db.address} port={p.postgres} dbname={DATABASE}"
        lock = f"connect_query='SET lock_timeout = {WEB_LOCK_TIMEOUT_MS}'"
        userlist = self.run_dir / "pg" / "userlist.txt"
        userlist.write_text('"postgres" ""\n')
        return f"""; generated by devtools/cluster.py: deploy/pgbouncer.ini plus this run's places
[pgbouncer]
%include {PGBOUNCER_INI}
listen_addr = {db.address}
listen_port = {p.pgbouncer}
unix_socket_dir = {sock}
auth_type = trust
auth_file = {userlist}
logfile =
pidfile =

[databases]
{DATABASE} = {server}
{DATABASE}_web = {server} {lock}
"""

    def _app_env(self) -> dict[str, str]:
        db, p = self.db.address, self.ports("db")
        return {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings.local",
            "ALLOWED_HOSTS": "*",
            # PgBouncer 1.18 in transaction pooling (docs/pgbouncer.md); the web's own alias
            # sets its lock_timeout (start_host)
            "DATABASE_URL": f"postgres://postgres@{db}:{p.pgbouncer}/{DATABASE}",
            "DB_POOLER": "pgbouncer-transaction",
            # Workers, beat and migrate wait for locks (the web's alias and env say 2 s), even
            # when the caller's environment carries the web's value (config/wsgi.py sets it).
            "DB_LOCK_TIMEOUT_MS": "0",
            "REDIS_URL": f"redis://{db}:{p.redis}/0",
            "CELERY_BROKER_URL": f"redis://{db}:{p.broker}/0",
            "PAYMENT_GATEWAY_URL": self.sandbox_url,
            "PAYMENT_GATEWAY_KEY": self.sandbox_key,
            "WEB_CONCURRENCY": str(WEB_PROCESSES),
            "PYTHONUNBUFFERED": "1",
            **self.extra_env,
        }

    def _haproxy(self) -> None:
        lines = []
        for host in self.hosts:
            place = self.net.places[host]
            lines.append(f"    server {host} {place.address}:{self.ports(host).web}\n")
        text = HAPROXY_CFG.read_text()
        lines_of = text.splitlines(True)
        marker = next(line for line in lines_of if line.strip().startswith(SERVERS_MARKER))
        cfg = self.run_dir / "haproxy.cfg"
        cfg.write_text(text.replace(marker, marker + "".join(lines), 1))
        env = {
            **os.environ,
            "HAPROXY_BIND": f"127.0.0.1:{self.port}",
            "HAPROXY_STATS_SOCKET": str(self.stats_socket),
            "HAPROXY_STATS_BIND": f"127.0.0.1:{self.port + 6}",
            "HAPROXY_ERRORS_DIR": str(HAPROXY_CFG.parent),
            "HAPROXY_QUEUE_MS": str(QUEUE_MS),
            "HAPROXY_SERVER_MAXCONN": str(2 * WEB_PROCESSES),
        }
        root = Place("lb", "127.0.0.1", None)
        self._spawn(root, Process("haproxy", ("haproxy", "-db", "-f", str(cfg))), env)

    @property
    def stats_socket(self) -> Path:
        return self.run_dir / "haproxy.sock"

    def host_processes(self, host: str) -> dict[str, Process]:
        """The host's part of the process table: gunicorn and a worker per queue (and beat
        on h1 while BEAT_ON_FIRST_HOST_ONLY)."""
        place = self.net.places[host]
        layout = Layout(
            web_bind=f"{place.address}:{self.ports(host).web}",
            sandbox=None,
            web_args=("--graceful-timeout", "10"),
            node_prefix=f"{host}-",
            beat=host == self.hosts[0] or not BEAT_ON_FIRST_HOST_ONLY,
            beat_loglevel="WARNING",
            metrics_dir=self.run_dir / "prometheus" / host,
            worker_metrics_base_port=self.ports(host).worker_metrics,
        )
        return table(layout)

    def start_host(self, host: str, *, wait: bool = True) -> None:
        place = self.net.places[host]
        env = {
            **self.env,
            "READY_DRAIN_FILE": str(self.drain_file(host)),
            "WORKER_METRICS_ADDR": place.address,
        }
        web = {
            "DATABASE_URL": f"{self.env['DATABASE_URL']}_web",
            "DB_LOCK_TIMEOUT_MS": str(WEB_LOCK_TIMEOUT_MS),
        }
        for name, process in self.host_processes(host).items():
            self._spawn(place, process, {**env, **web} if name == "gunicorn" else env)
        if wait:
            self.wait_host(host)

    def wait_host(self, host: str) -> None:
        """Until its gunicorn answers /readyz and each worker logged that it is ready."""
        names = [f"{host}-{n}" for n in self.host_processes(host)]
        procs = {n: self.procs[n] for n in names}
        stop = Stop()
        if not answering(f"{self.web_url(host)}/readyz", procs, stop, START_SECONDS):
            raise RuntimeError(f"{host}'s gunicorn is not ready; see {self.logs}/{host}-*.log")
        for name in names:
            if "-worker-" in name:
                log = self.logs / f"{name}.log"
                self._wait(lambda log=log: b" ready." in log.read_bytes(), name)

    def _wait(self, ready: object, what: str, seconds: float = START_SECONDS) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if ready():  # type: ignore[operator]
                return
            dead = [
                n
                for n, p in self.procs.items()
                if p.poll() is not None and n.startswith(("db-", "lb-"))
            ]
            if dead:
                raise RuntimeError(f"{dead[0]} exited; see {self.logs}/{dead[0]}.log")
            time.sleep(0.1)
        raise RuntimeError(f"{what} did not come up in {seconds:.0f} s; see {self.logs}/")

    # --- a host's life ----------------------------------------------------------------------

    def _of(self, host: str) -> dict[str, subprocess.Popen[bytes]]:
        return {n: p for n, p in self.procs.items() if n.startswith(f"{host}-")}

    def kill_host(self, host: str) -> None:
        """Lose the host: SIGKILL every process of it, then cut its link."""
        procs = self._of(host)
        for proc in procs.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        self.net.cut(host)
        wait_gone(procs, 5.0)
        for name, proc in procs.items():
            proc.wait()
            del self.procs[name]
        # The lost host's workers' unacknowledged tasks come back by the sweep (PIPELINE_SWEEP).

    def revive_host(self, host: str) -> None:
        """Bring a lost host back: mend its link, start its processes, wait until ready."""
        self.net.mend(host)
        self.start_host(host)

    def drain(self, host: str) -> None:
        """Ask the host to drain: its /readyz answers 503 until undrained."""
        self.drain_file(host).touch()

    def undrain(self, host: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.drain_file(host).unlink()

    def restart_host(self, host: str) -> None:
        """A rolling upgrade's step: drain, wait until HAProxy stops sending to the host,
        stop it gracefully (one SIGTERM each), start it again, undrain, wait until up."""
        self.drain(host)
        self.wait_servers(down={host})
        procs = self._of(host)
        stop_all(procs)
        for name in procs:
            del self.procs[name]
        self.undrain(host)
        self.start_host(host)
        self.wait_servers(up={host})

    # --- HAProxy's view ---------------------------------------------------------------------

    def stats(self) -> dict[str, dict[str, str]]:
        """`show stat` on HAProxy's socket: the web backend's servers by name."""
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(5)
            sock.connect(str(self.stats_socket))
            sock.sendall(b"show stat\n")
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        lines = b"".join(chunks).decode().lstrip("# ").splitlines()
        return {
            row["svname"]: row
            for row in csv.DictReader(lines)
            if row.get("pxname") == "web" and row.get("svname") in self.hosts
        }

    def wait_servers(
        self, *, up: set[str] = frozenset(), down: set[str] = frozenset(), seconds: float = 60
    ) -> float:
        """Until HAProxy shows `up` UP and `down` not UP; the seconds that took."""
        started = time.monotonic()

        def seen() -> bool:
            rows = self.stats()
            status = {name: rows[name]["status"] for name in rows}
            return all(status.get(h) == "UP" for h in up) and all(
                not status.get(h, "").startswith("UP") for h in down
            )

        self._wait(seen, f"HAProxy: up {sorted(up)}, down {sorted(down)}", seconds)
        return time.monotonic() - started

    # --- stopping ---------------------------------------------------------------------------

    def stop(self) -> None:
        """HAProxy first, then the hosts, then the engines; then the network."""
        try:
            for prefix in ("lb-", "h", "db-"):
                stop_all({n: p for n, p in self.procs.items() if n.startswith(prefix)})
            self.procs.clear()
        finally:
            self.net.down()
            netns.release(self.port)


def _tcp(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def main(argv: list[str]) -> int:
    import argparse  # noqa: PLC0415

    from devtools.stack import admin_password, manage  # noqa: PLC0415

    parser = argparse.ArgumentParser(prog="python -m devtools.cluster")
    parser.add_argument("--hosts", type=int, default=int(os.environ.get("HOSTS", "3")))
    parser.add_argument("--port", type=int, default=int(os.environ.get("CLUSTER_PORT", "8090")))
    parser.add_argument(
        "--loopback", action="store_true", help="no namespaces: every host on 127.0.0.1"
    )
    args = parser.parse_args(argv)
    cluster = Cluster(hosts=args.hosts, port=args.port, namespaces=False if args.loopback else None)
    if cluster.why_loopback:
        print(
            f"No network namespaces here ({cluster.why_loopback}): every host runs on "
            "127.0.0.1 with ports of its own, and a lost host's link cannot be cut.",
            flush=True,
        )
    stop = Stop()
    stop.install()
    logs = os.path.relpath(cluster.logs)
    try:
        print(f"Starting {len(cluster.hosts)} hosts, PostgreSQL, PgBouncer, Redis x2, HAProxy…")
        cluster.start()
        os.environ.update(cluster.env)
        key = manage("seed_demo", capture=True).strip()
        password = admin_password()
        base = cluster.url
        hosts = "\n".join(
            f"  {h}           {cluster.web_url(h)}  ns {cluster.net.places[h].netns or '-'}"
            for h in cluster.hosts
        )
        db, p = cluster.db.address, cluster.ports("db")
        print(
            f"""
The cluster is up (logs in {logs}/, docs/cluster.md). Ctrl-C stops everything.

  HAProxy      {base}/api/docs/   stats {cluster.stats_url}   socket {cluster.stats_socket}
{hosts}
  PostgreSQL   {db}:{p.postgres} (PgBouncer {db}:{p.pgbouncer}), ns {cluster.db.netns or "-"}
  Redis        state {db}:{p.redis}, broker {db}:{p.broker}; gateway {cluster.sandbox_url}
  Admin        {base}/admin/   user: admin   password: {password}
  API key      {key}   (client 'demo-chatbot')

  Drain a host:  touch {cluster.run_dir}/drain/h1   (rm it to undrain)
""",
            flush=True,
        )
        while not stop.requested:
            exited = [n for n, proc in cluster.procs.items() if proc.poll() is not None]
            if exited:
                code = cluster.procs[exited[0]].returncode
                print(f"{exited[0]} exited with {code}; see {logs}/{exited[0]}.log.")
                return 1
            time.sleep(0.5)
        return 0
    finally:
        print("Stopping…", flush=True)
        cluster.stop()
        print("Stopped.", flush=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
