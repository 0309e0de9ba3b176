"""Instructions per request and per order, counted by valgrind's callgrind: a figure that
does not move with the machine's load (docs/performance.md, "Counting instructions").

Usage: .venv/bin/python -m bench.instructions [requests] [--stages ORDERS] [--web-only]

CPU time on this shared machine moves by 20 % between two runs of the same code, more in a
slow spell, so a change worth 2 % cannot be seen in it. callgrind counts the instructions
a process executes, which are the same on a busy machine as on a quiet one. This runs, each
in its own process under `valgrind --tool=callgrind`:

- web: `requests` of each hot endpoint through the WSGI application in-process (the
  floors' bare GET and POST + INSERT, the claim POST, the order POST, the polled order GET),
  after a warm-up of each, as bench.web_costs does;
- stages (unless --web-only): bench.stage_costs with ORDERS orders (claim, intake,
  reserve, settle, callbacks), after the same stages on 20 orders unmeasured.

and prints thousands of instructions per request or order, counted from the first to the
last of each: this process only (PostgreSQL, Redis, the gateway and the receiver are other
processes), user space only (not the kernel's socket work). The ratios to the floor's POST +
INSERT are what the benchmark's intake and claims ratios track when gunicorn is what
saturates. Under valgrind the code runs about 40 times slower, so the settings that refresh
a copy every so many seconds are set 40 times longer, as often per request as at full speed.

The runs' dumps and a JSON summary go to bench/runs/instructions-<time>/ (`callgrind_annotate
<file>` lists the costliest C functions; the Python frames are all in the interpreter's).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench import results_index
from bench.spans import LABELS_ENV, measured

ROOT = Path(__file__).resolve().parent.parent
RUNS = ROOT / "bench" / "runs"
DATABASE_URL = "postgres://postgres@127.0.0.1:5432/campaign_instructions"
SLOWDOWN = 40  # about how much slower code runs under callgrind
ENDPOINTS = ("floor_get", "floor_insert", "claim", "order", "get")
WARM_UP = 20


def callgrind(args: list[str], out: Path, env: dict[str, str]) -> list[dict[str, Any]]:
    """Run `args` under callgrind, its spans' dumps into `out`; each span's label, count and
    instructions, in the order they ran."""
    labels = out / "labels.jsonl"
    labels.unlink(missing_ok=True)
    command = [
        "valgrind",
        "--tool=callgrind",
        "--zero-before=sched_yield",
        "--dump-before=getloadavg",
        f"--callgrind-out-file={out / 'callgrind.out'}",
        *args,
    ]
    with (out / "stderr.log").open("ab") as log:
        subprocess.run(command, cwd=ROOT, env={**env, LABELS_ENV: str(labels)}, check=True,
                       stdout=log, stderr=log)  # fmt: skip
    spans = [json.loads(line) for line in labels.read_text().splitlines()]
    for number, span in enumerate(spans, start=1):
        span["instructions"] = dump_total(out / f"callgrind.out.{number}")
    return spans


def dump_total(path: Path) -> int:
    """The instructions a callgrind dump counted (its `summary:` line; `totals:` adds the
    inclusive cost of calls still open when the counters were zeroed)."""
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("summary:"):
            return int(line.split()[1])
    raise ValueError(f"{path}: no summary line")


def environment() -> dict[str, str]:
    """The benchmark stack's settings that matter in-process, on a database of our own."""
    from bench.stack import stack_env

    env = stack_env(sandbox_quota_rps=1000)
    env.update(
        DATABASE_URL=os.environ.get("INSTRUCTIONS_DATABASE_URL", DATABASE_URL),
        REDIS_URL="redis://127.0.0.1:6379/13",
        PYTHONHASHSEED="0",  # the same dict and set layouts every run
        INTAKE_CACHE_SECONDS=str(1.0 * SLOWDOWN),
        CACHE_VERSION_CHECK_SECONDS=str(0.15 * SLOWDOWN),
    )
    return env


# --- The web child: the hot endpoints through the WSGI application ---------------------------


def web(requests: int) -> None:
    """In the measured process: WARM_UP then `requests` of each endpoint, the latter measured."""
    from bench import web_costs  # after the environment is set

    bench = web_costs.setup(2 * (requests + WARM_UP) + 10, None)
    from coupons.models import Coupon

    def call(method: str, path: str, want: str, body: Any = None, **headers: str) -> bytes:
        status, _, content = web_costs.wsgi_call(
            bench.app, method, path, bench.key, body, **headers
        )
        if not status.startswith(want):
            raise RuntimeError(f"{method} {path}: expected {want}, got {status}: {content[:300]!r}")
        return content

    for phase, count in (("warm", WARM_UP), ("measure", requests)):
        customers = [f"{phase}-{i}" for i in range(count)]
        orders: list[str] = []

        def claims(customers: list[str] = customers) -> None:
            for c in customers:
                path = f"{web_costs.API}/campaigns/{bench.slug}/claims/"
                call("POST", path, "201", {"customer_id": c}, idempotency_key=f"k-{c}")

        def places(customers: list[str] = customers, orders: list[str] = orders) -> None:
            coupons = Coupon.objects.filter(
                campaign_id=bench.campaign_id, customer_id__in=customers
            )
            for coupon in list(coupons):
                path = f"{web_costs.API}/orders/"
                body = bench.order_body(coupon)
                content = call("POST", path, "202", body, idempotency_key=f"o-{coupon.pk}")
                orders.append(json.loads(content)["id"])

        def polls(orders: list[str] = orders) -> None:
            for public_id in orders:
                call("GET", f"{web_costs.API}/orders/{public_id}/", "200")

        runs = {
            "floor_get": lambda count=count: [
                call("GET", "/bench/floor/get/", "200") for _ in range(count)
            ],
            "floor_insert": lambda count=count: [
                call("POST", "/bench/floor/insert/", "201", {"name": f"n{i}", "value": i})
                for i in range(count)
            ],
            "claim": claims,
            "order": places,
            "get": polls,
        }
        for name in ENDPOINTS:
            if phase == "warm":
                runs[name]()
                continue
            with measured(name, count):
                runs[name]()


# --- The parent -------------------------------------------------------------------------------


def report(spans: list[dict[str, Any]]) -> list[str]:
    """A line per span: thousands of instructions per unit, and x the floor's POST + INSERT."""
    per = {s["label"]: s["instructions"] / s["count"] for s in spans}
    floor = per.get("floor_insert")
    lines = []
    for label, value in per.items():
        ratio = f"   floor POST + INSERT / this: {floor / value:5.2f}" if floor else ""
        lines.append(f"  {label:<28} {value / 1000:9.0f} k instructions{ratio}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("requests", type=int, nargs="?", default=200)
    parser.add_argument("--stages", type=int, default=300, metavar="ORDERS")
    parser.add_argument("--web-only", action="store_true")
    parser.add_argument("--child", choices=["web"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "web":
        web(args.requests)
        return
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is not installed (Debian: apt-get install valgrind)")
    out = RUNS / time.strftime("instructions-%Y%m%dT%H%M%SZ", time.gmtime())
    out.mkdir(parents=True)
    env = environment()
    _fresh_database(env["DATABASE_URL"])
    python = sys.executable
    started = time.monotonic()
    print(f"web: {args.requests} requests an endpoint under callgrind ...", flush=True)
    web_dir = out / "web"
    web_dir.mkdir()
    spans = callgrind([python, "-m", "bench.instructions", "--child", "web", str(args.requests)],
                      web_dir, env)  # fmt: skip
    print("\n".join(report(spans)), flush=True)
    if not args.web_only:
        print(f"stages: {args.stages} orders under callgrind ...", flush=True)
        stages_dir = out / "stages"
        stages_dir.mkdir()
        stage_env = {**env, "DJANGO_SETTINGS_MODULE": "config.settings.local"}
        stage_args = [python, "-m", "bench.stage_costs", str(args.stages), "--warm-up", "20"]
        stage_spans = callgrind(stage_args, stages_dir, stage_env)
        print("\n".join(report(stage_spans)))
        spans += stage_spans
    summary = {
        "commit": results_index.commit(),
        "requests": args.requests,
        "stage_orders": None if args.web_only else args.stages,
        "spans": spans,
        "seconds": round(time.monotonic() - started),
    }
    (out / "instructions.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"in {summary['seconds']} s; dumps and instructions.json in {out.relative_to(ROOT)}")


def _fresh_database(url: str) -> None:
    """The same empty database every run: the counts do not depend on earlier runs' rows."""
    import psycopg

    name = url.rsplit("/", 1)[1]
    with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
