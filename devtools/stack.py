"""Run the whole stack on this machine, the way production lays it out, until Ctrl-C.

`python -m devtools.stack` (or `make run`): migrates, seeds the demo, then starts gunicorn, one
Celery worker per queue, beat and, unless a gateway is configured, the sandbox gateway;
prints where to look; stops everything cleanly on Ctrl-C, SIGTERM or SIGHUP. Logs go to
.run/logs/ (`STACK_RUN_DIR` moves .run/, e.g. for a test beside a running stack).

Stopping: each process is started in its own session, so a terminal's Ctrl-C (sent to the
whole foreground process group) reaches this runner only, and the runner signals each process
exactly once: SIGTERM, its graceful stop. A process that got the terminal's SIGINT and then
ours stopped twice at once, and a gunicorn worker once hung doing so, keeping the port. Then
the runner waits until each process's group is empty (a process's own children, gunicorn's
workers or Celery's pool, are in its group), SIGKILLs what is left of a group at the
deadline, reaps what it started, and exits only when all of it is gone.

A gateway is configured when `PAYMENT_GATEWAY_URL` is set in the environment (with
`PAYMENT_GATEWAY_KEY` for its key): the workers then call it and no sandbox is started.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from devtools.processes import PY, ROOT, Layout, Process, Sandbox, table

RUN_DIR = Path(os.environ.get("STACK_RUN_DIR", ROOT / ".run"))
LOGS = RUN_DIR / "logs"
HOST = os.environ.get("STACK_HOST", "127.0.0.1")
PORT = int(os.environ.get("STACK_PORT", "8000"))
GATEWAY_PORT = int(os.environ.get("SANDBOX_GATEWAY_PORT", "8765"))
FLOWER_PORT = int(os.environ.get("FLOWER_PORT", "5555"))
# Each worker node serves its pool's metrics on its own port, from this one up.
WORKER_METRICS_BASE_PORT = int(os.environ.get("WORKER_METRICS_BASE_PORT", "9101"))
# prometheus-client's multiprocess files, one directory per process group, emptied at start.
METRICS_DIR = RUN_DIR / "prometheus"
# How long the stack has to stop after its one SIGTERM before what is left is killed: a
# Celery worker finishes its batch, gunicorn the requests it is serving.
STOP_SECONDS = 20.0
# After SIGKILL the kernel ends a group at once; this only bounds the wait for it to empty.
KILLED_SECONDS = 5.0


def manage(*args: str, capture: bool = False) -> str:
    done = subprocess.run(
        [PY, "manage.py", *args], cwd=ROOT, check=True, text=True, capture_output=capture
    )
    return done.stdout if capture else ""


def admin_password() -> str:
    """A fresh password for the local `admin` superuser, set on every start (dev only)."""
    password = secrets.token_urlsafe(9)
    code = (
        "from django.contrib.auth import get_user_model as g; U = g(); "
        "u = U.objects.filter(username='admin').first() or U(username='admin', is_staff=True, "
        "is_superuser=True, email='admin@example.com'); "
        f"u.set_password({password!r}); u.save()"
    )
    manage("shell", "-v", "0", "-c", code)
    return password


@dataclass(frozen=True)
class Gateway:
    url: str
    sandbox: bool  # True: started here; False: configured by the operator
    key_set: bool  # PAYMENT_GATEWAY_KEY given (else the settings' default key is sent)

    def describe(self) -> str:
        if self.sandbox:
            return (
                f"sandbox at {self.url} (20 ms latency); set PAYMENT_GATEWAY_URL and "
                "PAYMENT_GATEWAY_KEY to use your own"
            )
        key = "PAYMENT_GATEWAY_KEY set" if self.key_set else "no PAYMENT_GATEWAY_KEY given"
        return f"configured: {self.url} ({key}; no sandbox started)"


def gateway_in_use(environ: Mapping[str, str]) -> Gateway:
    """The operator's gateway when PAYMENT_GATEWAY_URL is set, else the sandbox started here."""
    key_set = bool(environ.get("PAYMENT_GATEWAY_KEY"))
    url = environ.get("PAYMENT_GATEWAY_URL", "").strip()
    if url:
        return Gateway(url=url, sandbox=False, key_set=key_set)
    return Gateway(url=f"http://127.0.0.1:{GATEWAY_PORT}", sandbox=True, key_set=key_set)


def environment(*, environ: Mapping[str, str], gateway: Gateway) -> dict[str, str]:
    """What every process of the stack runs with: the caller's environment, the gateway in
    use, and local settings unless the caller names others. gunicorn (config/wsgi.py) and
    Celery (config/celery.py) would otherwise load production's, which refuse DEBUG and a
    missing SECRET_KEY. Test orders (docs/integrator-guide.md, Test mode) go to the sandbox
    started here unless PAYMENT_TEST_GATEWAY_URL names another."""
    env = {
        "DJANGO_SETTINGS_MODULE": "config.settings.local",
        **environ,
        "PAYMENT_GATEWAY_URL": gateway.url,
    }
    if gateway.sandbox and not environ.get("PAYMENT_TEST_GATEWAY_URL"):
        env["PAYMENT_TEST_GATEWAY_URL"] = gateway.url
    return env


def layout(gateway: Gateway, *, flower: bool = False) -> Layout:
    """`make run`'s way of running the stack (devtools/processes.py has the processes)."""
    return Layout(
        web_bind=f"{HOST}:{PORT}",
        web_args=("--access-logfile", str(LOGS / "access.log")),
        sandbox=Sandbox(port=GATEWAY_PORT, latency_ms=20) if gateway.sandbox else None,
        flower_bind=(HOST, FLOWER_PORT) if flower else None,
        metrics_dir=METRICS_DIR,
        worker_metrics_base_port=WORKER_METRICS_BASE_PORT,
    )


def commands(gateway: Gateway, *, flower: bool = False) -> dict[str, Process]:
    return table(layout(gateway, flower=flower))


def fresh_metrics_dir(process: Process) -> None:
    """Empty the process group's multiprocess directory: stale files would be added in."""
    if directory := process.env.get("PROMETHEUS_MULTIPROC_DIR"):
        shutil.rmtree(directory, ignore_errors=True)
        Path(directory).mkdir(parents=True)


class Stop:
    """Whether a stop was asked for (SIGINT, SIGTERM, SIGHUP). The handler only records it:
    Python runs a handler between any two bytecodes of the main thread, also inside the
    stopping itself, so a second Ctrl-C must not start a second stop."""

    def __init__(self) -> None:
        self.requested = False

    def request(self, signum: int, frame: object) -> None:
        self.requested = True

    def install(self) -> None:
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, self.request)


def start(process: Process, env: dict[str, str], *, logs: Path = LOGS) -> subprocess.Popen[bytes]:
    """Start one process leading its own session and process group (see the module)."""
    fresh_metrics_dir(process)
    with (logs / f"{process.name}.log").open("ab") as log:
        return subprocess.Popen(
            process.argv,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**env, **process.env},
            start_new_session=True,
        )


def answering(
    url: str, procs: dict[str, subprocess.Popen[bytes]], stop: Stop, timeout: float = 120
) -> bool:
    """Wait until `url` answers 200 (the stack is really up), or a process died, or a stop
    was asked for, or time ran out (a port already taken shows up here, not as a silent
    failure later)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not stop.requested:
        if any(proc.poll() is not None for proc in procs.values()):
            return False
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 (our own URL)
                if response.status == 200:  # noqa: PLR2004
                    return True
        except OSError:
            pass
        time.sleep(0.5)
    return False


def group_alive(pgid: int) -> bool:
    """Whether any process of the group is left (an exited one its parent has not reaped yet
    counts too, for as long as it holds on)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # a member exists, under another user
        return True
    return True


def running(proc: subprocess.Popen[bytes]) -> bool:
    """The process, or anything left of its group: gunicorn's workers and Celery's pool
    outlive their parent when it dies first, and such an orphan keeps the port."""
    return proc.poll() is None or group_alive(proc.pid)


def wait_gone(
    procs: dict[str, subprocess.Popen[bytes]], seconds: float
) -> dict[str, subprocess.Popen[bytes]]:
    """Wait up to `seconds` for each process and its group to be gone; those still running."""
    deadline = time.monotonic() + seconds
    left = {name: proc for name, proc in procs.items() if running(proc)}
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = {name: proc for name, proc in left.items() if running(proc)}
    return left


def stop_all(procs: dict[str, subprocess.Popen[bytes]], *, seconds: float = STOP_SECONDS) -> None:
    """Signal each process once, wait for it and its group, kill what is left at the
    deadline; returns when everything started is gone and reaped (see the module)."""
    for proc in procs.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    left = wait_gone(procs, seconds)
    for name, proc in left.items():
        print(f"  {name} did not stop in {seconds:.0f} s; killing what is left of it", flush=True)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    for name in wait_gone(left, KILLED_SECONDS):
        print(f"  {name}: a killed process is not reaped yet by its parent", flush=True)
    for proc in procs.values():
        proc.wait()


def main(argv: list[str]) -> int:
    flower = "--flower" in argv
    LOGS.mkdir(parents=True, exist_ok=True)
    gateway = gateway_in_use(os.environ)
    env = environment(environ=os.environ, gateway=gateway)
    os.environ.update(env)
    manage("migrate", "--no-input", "-v", "0")
    key, test_key = manage("seed_demo", "--test-key", capture=True).split()
    password = admin_password()
    stop = Stop()
    stop.install()
    procs: dict[str, subprocess.Popen[bytes]] = {}
    logs = os.path.relpath(LOGS)
    try:
        worker_ports: list[str] = []
        for name, process in commands(gateway, flower=flower).items():
            if "WORKER_METRICS_PORT" in process.env:
                worker_ports.append(process.env["WORKER_METRICS_PORT"])
            procs[name] = start(process, env)
        base = f"http://{HOST}:{PORT}"
        if not answering(f"{base}/api/schema/", procs, stop):
            if stop.requested:
                return 0
            print(f"The web server did not answer at {base}; see {logs}/gunicorn.log.")
            return 1
        flower_line = (
            f"http://{HOST}:{FLOWER_PORT}/" if flower else "off (make run FLOWER=1 starts it)"
        )
        print(
            f"""
The stack is up (logs in {logs}/). Ctrl-C stops everything.

  API docs     {base}/api/docs/
  Admin        {base}/admin/   user: admin   password: {password}
  API key      {key}   (client 'demo-chatbot'; a new one each start)
  Test key     {test_key}   (test mode: campaign 'spring-free-order-test', SKUs TEST-...)
  Gateway      {gateway.describe()}
  Metrics      {base}/metrics, workers on ports {", ".join(worker_ports)}; {base}/readyz
  Flower       {flower_line}

Try it:
  curl -s -X POST {base}/api/v1/campaigns/spring-free-order/claims/ \\
    -H 'Authorization: Bearer {key}' -H 'Idempotency-Key: claim-1' \\
    -H 'Content-Type: application/json' -d '{{"customer_id": "c-42"}}'
""",
            flush=True,
        )
        while not stop.requested:
            exited = [name for name, proc in procs.items() if proc.poll() is not None]
            if exited:
                code = procs[exited[0]].returncode
                print(f"{exited[0]} exited with {code}; see {logs}/{exited[0]}.log.")
                break
            time.sleep(0.5)
        return 0
    finally:
        # Also on an error of the runner's own: its processes lead their own sessions, so
        # nothing else would stop them.
        print("Stopping…", flush=True)
        stop_all(procs)
        print("Stopped.", flush=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
