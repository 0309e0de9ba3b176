"""Run the whole stack on this machine, the way production lays it out, until Ctrl-C.

`python -m devtools.stack` (or `make run`): migrates, seeds the demo, then starts gunicorn, one
Celery worker per queue, beat and, unless a gateway is configured, the sandbox gateway;
prints where to look; stops everything cleanly on Ctrl-C or SIGTERM. Logs go to .run/logs/.

A gateway is configured when `PAYMENT_GATEWAY_URL` is set in the environment (with
`PAYMENT_GATEWAY_KEY` for its key): the workers then call it and no sandbox is started.
"""

from __future__ import annotations

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

LOGS = ROOT / ".run" / "logs"
HOST = os.environ.get("STACK_HOST", "127.0.0.1")
PORT = int(os.environ.get("STACK_PORT", "8000"))
GATEWAY_PORT = int(os.environ.get("SANDBOX_GATEWAY_PORT", "8765"))
FLOWER_PORT = int(os.environ.get("FLOWER_PORT", "5555"))
# Each worker node serves its pool's metrics on its own port, from this one up.
WORKER_METRICS_BASE_PORT = int(os.environ.get("WORKER_METRICS_BASE_PORT", "9101"))
# prometheus-client's multiprocess files, one directory per process group, emptied at start.
METRICS_DIR = ROOT / ".run" / "prometheus"


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
    missing SECRET_KEY."""
    return {
        "DJANGO_SETTINGS_MODULE": "config.settings.local",
        **environ,
        "PAYMENT_GATEWAY_URL": gateway.url,
    }


def layout(gateway: Gateway, *, flower: bool = False) -> Layout:
    """`make run`'s way of running the stack (devtools/processes.py has the processes)."""
    return Layout(
        web_bind=f"{HOST}:{PORT}",
        web_args=("--access-logfile", str(LOGS / "access.log")),
        beat_schedule=ROOT / ".run" / "celerybeat-schedule",
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


def start(process: Process, env: dict[str, str]) -> subprocess.Popen[bytes]:
    fresh_metrics_dir(process)
    log = (LOGS / f"{process.name}.log").open("ab")
    return subprocess.Popen(
        process.argv, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env={**env, **process.env}
    )


def answering(url: str, procs: dict[str, subprocess.Popen[bytes]], timeout: float = 120) -> bool:
    """Wait until `url` answers 200 (the stack is really up), or a process died, or time ran
    out (a port already taken shows up here, not as a silent failure later)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
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


def stop_all(procs: dict[str, subprocess.Popen[bytes]]) -> None:
    for proc in procs.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 20
    for name, proc in procs.items():
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            print(f"  {name} did not stop in time; killing it")
            proc.kill()


def main(argv: list[str]) -> int:
    flower = "--flower" in argv
    LOGS.mkdir(parents=True, exist_ok=True)
    gateway = gateway_in_use(os.environ)
    env = environment(environ=os.environ, gateway=gateway)
    os.environ.update(env)
    manage("migrate", "--no-input", "-v", "0")
    key = manage("seed_demo", capture=True).strip()
    password = admin_password()
    procs: dict[str, subprocess.Popen[bytes]] = {}
    stopping = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    worker_ports: list[str] = []
    for name, process in commands(gateway, flower=flower).items():
        if "WORKER_METRICS_PORT" in process.env:
            worker_ports.append(process.env["WORKER_METRICS_PORT"])
        procs[name] = start(process, env)
    base = f"http://{HOST}:{PORT}"
    if not answering(f"{base}/api/schema/", procs):
        print(f"The web server did not answer at {base}; see .run/logs/gunicorn.log. Stopping.")
        stop_all(procs)
        return 1
    flower_line = f"http://{HOST}:{FLOWER_PORT}/" if flower else "off (make run FLOWER=1 starts it)"
    print(
        f"""
The stack is up (logs in .run/logs/). Ctrl-C stops everything.

  API docs     {base}/api/docs/
  Admin        {base}/admin/   user: admin   password: {password}
  API key      {key}   (client 'demo-chatbot'; a new one each start)
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
    while not stopping:
        for name, proc in procs.items():
            if proc.poll() is not None:
                print(f"{name} exited with {proc.returncode}; see .run/logs/{name}.log. Stopping.")
                stopping = True
                break
        time.sleep(0.5)
    print("Stopping…", flush=True)
    stop_all(procs)
    print("Stopped.")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
