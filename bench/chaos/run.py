"""The chaos suite: `python -m bench.chaos [--mode short|full] [--scenario NAME ...]`
(`make chaos`, `make chaos-short`; the test suite runs the short form).

It starts a private PostgreSQL and Redis (bench/chaos/engines.py) and the whole stack on
them (bench/chaos/supervisor.py), then, for each scenario, sends a burst of shoppers through
the chatbot API (bench/chaos/shoppers.py) while one fault, or all of them, is injected
(bench/chaos/faults.py); heals; waits for the system to go quiet; and checks every
invariant from the database and the sandbox gateway's ledger (bench/invariants.py) against
what the shoppers were told. It prints a table, one row per scenario, writes
bench/runs/chaos-<mode>-<time>/chaos-<mode>-<time>.json (ignored by git; logs stay in
.run/chaos/<mode>/logs/ until the next run), appends its line to bench/results/INDEX.md
(bench/results_index.py) and exits 1 if any scenario broke a promise.

Columns: accepted (orders the chatbot was told 2xx), terminal (of those), lost (accepted,
not terminal or not in the database, plus any order in the database still live after the
quiet wait), oversold (stock or coupon invariants, a second coupon for one customer),
over budget, double charges (and any other charge breach), 5xx (answers to well-formed
requests), broken (other contract breaches: a replay answered with another order, a 429
without Retry-After, a coupon the chatbot was given that the database does not hold),
unanswered (shoppers that gave up after two minutes of retries), recover (seconds from the
end of the faults until every order was terminal).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench import results_index
from bench.chaos.engines import PrivatePostgres, PrivateRedis, free_port
from bench.chaos.faults import HEALTHY_GATEWAY, SCENARIOS, Chaos, Timing
from bench.chaos.shoppers import Record, Shoppers
from bench.chaos.supervisor import Supervisor, layout
from bench.invariants import TERMINAL, check_invariants
from bench.results_index import RUNS

ROOT = Path(__file__).resolve().parents[2]
RUN_DIR = ROOT / ".run" / "chaos"
SANDBOX_KEY = "chaos-sandbox-key"
TIME_LIMIT = 10  # seconds: the stack's hard task time limit (soft at 8)
# The pipeline's short clocks, so that recovery fits in a run: the sweep every 2 s, an
# untouched order re-nudged after 8 s, a worker hands over after 3 s, a gateway call times
# out after 1.2 s. The cluster's tests (tests/cluster/) run on the same.
CLOCKS = {
    "PIPELINE_SWEEP_SECONDS": "2",
    "STALE_AFTER_SECONDS": "8",
    "WORKER_DRAIN_SECONDS": "3",
    "PAYMENT_GATEWAY_TIMEOUT": "1.2",
    "PAYMENT_RETRY_BASE_SECONDS": "0.5",
    "CELERY_TASK_SOFT_TIME_LIMIT": str(TIME_LIMIT - 2),
    "CELERY_TASK_TIME_LIMIT": str(TIME_LIMIT),
}


@dataclass(frozen=True)
class Mode:
    shoppers: int  # per scenario
    rate: float  # shoppers starting per second
    quiet_timeout: float  # seconds to wait for every order to be terminal
    timing: Timing


MODES = {
    # Inside CI's budget: about 4 minutes for all nine scenarios on 2 cores.
    "short": Mode(
        shoppers=150,
        rate=12.5,
        quiet_timeout=120,
        timing=Timing(
            burst_seconds=12,
            kill_every=2.0,
            roll_every=2.0,
            redis_down_seconds=1.0,
            gateway_down_seconds=8,
            time_limit_seconds=TIME_LIMIT,
        ),
    ),
    # The full form: 30 s gateway outage, a minute of burst per scenario.
    "full": Mode(
        shoppers=1200,
        rate=20,
        quiet_timeout=300,
        timing=Timing(
            burst_seconds=60,
            kill_every=3.0,
            roll_every=4.0,
            redis_down_seconds=3.0,
            gateway_down_seconds=30,
            time_limit_seconds=TIME_LIMIT,
        ),
    ),
}


def stack_env(*, pg: PrivatePostgres, rds: PrivateRedis, sandbox_url: str) -> dict[str, str]:
    """Production code paths (bench.settings is base plus the floor app), on the private
    engines, with the pipeline's clocks shortened so that recovery fits in a test run: the
    sweep every 2 s, an untouched order re-nudged after 8 s, a worker hands over after 3 s,
    a gateway call times out after 1.2 s, tasks are killed after 10 s."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "bench.settings",
        "DATABASE_URL": pg.url,
        "REDIS_URL": f"{rds.url}/0",
        "CELERY_BROKER_URL": f"{rds.url}/1",
        "PAYMENT_GATEWAY_URL": sandbox_url,
        "PAYMENT_GATEWAY_KEY": SANDBOX_KEY,
        "SECRET_KEY": "chaos-only-not-secret",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "DEBUG": "false",
        **CLOCKS,
        "GATEWAY_RPS": "1000",
        "PYTHONUNBUFFERED": "1",
    }


@dataclass
class Row:
    scenario: str
    faults: dict[str, int]
    accepted: int
    terminal: int
    lost: int
    oversold: int
    over_budget: int
    double_charges: int
    server_errors: int
    broken: int
    unanswered: int
    recover_seconds: float | None
    restarts: dict[str, int]
    redelivered: int
    shoppers: dict[str, Any]
    violations: list[str]
    fault_log: list[str]

    @property
    def passed(self) -> bool:
        return (
            self.lost + self.oversold + self.over_budget + self.double_charges == 0
            and self.server_errors + self.broken + self.unanswered == 0
            and self.terminal == self.accepted
            and self.recover_seconds is not None
            and not self.violations
        )


class Run:
    def __init__(self, mode: Mode, *, run_dir: Path) -> None:
        self.mode = mode
        self.run_dir = run_dir
        self.pg = PrivatePostgres(run_dir / "pgdata")
        self.redis = PrivateRedis(run_dir / "redis")
        self.web_port, self.sandbox_port = free_port(), free_port()
        self.web_url = f"http://127.0.0.1:{self.web_port}"
        self.sandbox_url = f"http://127.0.0.1:{self.sandbox_port}"
        self.supervisor: Supervisor | None = None
        self.fixtures: dict[str, Any] = {}

    # --- setting up ---------------------------------------------------------------------

    def start(self, scenarios: list[str]) -> None:
        logs = self.run_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        say(f"engines: private PostgreSQL and Redis in {self.run_dir}")
        self.pg.start()
        self.redis.start()
        env = stack_env(pg=self.pg, rds=self.redis, sandbox_url=self.sandbox_url)
        say("migrating and seeding")
        manage = [sys.executable, "manage.py"]
        subprocess.run([*manage, "migrate", "-v", "0"], cwd=ROOT, env=env, check=True)
        spec = {"scenarios": dict.fromkeys(scenarios, self.mode.shoppers)}
        seeded = subprocess.run(
            [sys.executable, "-m", "bench.chaos.seed", json.dumps(spec)],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
        self.fixtures = json.loads(seeded.stdout)
        say(f"starting the stack: web {self.web_url}, gateway {self.sandbox_url}")
        self.supervisor = Supervisor(
            logs=logs,
            env=env,
            layout=layout(
                web_port=self.web_port,
                sandbox_port=self.sandbox_port,
                sandbox_key=SANDBOX_KEY,
                run_dir=self.run_dir,
            ),
        )
        self.supervisor.start_all(
            web_url=self.web_url, sandbox_url=self.sandbox_url, sandbox_key=SANDBOX_KEY
        )

    def stop(self) -> None:
        if self.supervisor is not None:
            self.supervisor.stop_all()
        self.redis.stop()
        self.pg.stop()

    # --- one scenario -------------------------------------------------------------------

    def scenario(self, name: str) -> Row:
        assert self.supervisor is not None  # noqa: S101
        campaign = self.fixtures["campaigns"][name]
        sandbox = httpx.Client(
            base_url=self.sandbox_url,
            headers={"Authorization": f"Bearer {SANDBOX_KEY}"},
            timeout=5,
        )
        chaos = Chaos(
            supervisor=self.supervisor,
            pg=self.pg,
            redis=self.redis,
            sandbox=sandbox,
            broker_url=f"{self.redis.url}/1",
            timing=self.mode.timing,
            product_ids=self._product_ids(campaign["skus"]),
        )
        restarts_before = Counter(self.supervisor.restarts)
        log_marks = self._worker_log_sizes()
        fault = threading.Thread(target=SCENARIOS[name], args=(chaos,), daemon=True)
        say(f"{name}: {self.mode.shoppers} shoppers at {self.mode.rate}/s with faults")
        chaos.t0 = time.monotonic()
        fault.start()
        shoppers = Shoppers(
            base_url=self.web_url,
            api_key=self.fixtures["api_key"],
            slug=campaign["slug"],
            skus=campaign["skus"],
            tag=name,
        )
        burst = threading.Thread(
            target=shoppers.run, kwargs={"shoppers": self.mode.shoppers, "rate": self.mode.rate}
        )
        burst.start()
        time.sleep(self.mode.timing.burst_seconds)
        chaos.stop.set()
        fault.join()
        chaos.gateway(
            **HEALTHY_GATEWAY
        )  # whatever the fault left, the next scenario starts healthy
        healed = time.monotonic()
        burst.join()
        recover = self._quiet(campaign["campaign_id"], since=healed)
        row = self._check(
            name,
            campaign,
            shoppers.record,
            chaos=chaos,
            recover=recover,
            restarts=Counter(self.supervisor.restarts) - restarts_before,
            redelivered=self._redelivered(log_marks),
        )
        sandbox.close()
        return row

    def _product_ids(self, skus: list[str]) -> list[int]:
        with self.pg.connect() as conn:
            rows = conn.execute("SELECT id FROM shop_product WHERE sku = ANY(%s)", [skus])
            return [pk for (pk,) in rows.fetchall()]

    def _quiet(self, campaign_id: int, *, since: float) -> float | None:
        """Seconds from `since` until every order of the campaign is terminal and every
        process is up; None if that did not happen within the mode's quiet time-out."""
        deadline = since + self.mode.quiet_timeout
        while time.monotonic() < deadline:
            try:
                with self.pg.connect() as conn:
                    (live,) = conn.execute(
                        "SELECT count(*) FROM orders_order"
                        " WHERE campaign_id = %s AND NOT (status = ANY(%s))",
                        [campaign_id, list(TERMINAL)],
                    ).fetchone()
            except Exception:
                live = -1
            assert self.supervisor is not None  # noqa: S101
            if live == 0 and self.supervisor.all_up():
                return round(time.monotonic() - since, 1)
            time.sleep(0.5)
        return None

    def _check(
        self,
        name: str,
        campaign: dict[str, Any],
        record: Record,
        *,
        chaos: Chaos,
        recover: float | None,
        restarts: Counter[str],
        redelivered: int,
    ) -> Row:
        ledger = httpx.get(
            f"{self.sandbox_url}/_sandbox/ledger",
            headers={"Authorization": f"Bearer {SANDBOX_KEY}"},
            timeout=30,
        ).json()
        accepted_ids = set(record.accepted.values())
        with self.pg.connect() as conn:
            conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
            found = check_invariants(conn, ledger, accepted_ids)
            statuses = dict(
                conn.execute(
                    "SELECT public_id::text, status FROM orders_order WHERE campaign_id = %s",
                    [campaign["campaign_id"]],
                ).fetchall()
            )
            held = dict(
                conn.execute(
                    "SELECT customer_id, code FROM coupons_coupon WHERE campaign_id = %s",
                    [campaign["campaign_id"]],
                ).fetchall()
            )
            over_limit = conn.execute(
                "SELECT customer_id FROM coupons_coupon WHERE campaign_id = %s"
                " GROUP BY customer_id HAVING count(*) > 1",
                [campaign["campaign_id"]],
            ).fetchall()
            conn.rollback()
        terminal = sum(1 for oid in accepted_ids if statuses.get(oid) in TERMINAL)
        # Orders stored for requests whose answer the shopper never saw (a 429 or a time-out
        # after the commit) must end too.
        stranded = sum(
            1 for oid, s in statuses.items() if oid not in accepted_ids and s not in TERMINAL
        )
        missing_coupons = [c for c, code in record.coupons.items() if held.get(c) != code]
        by_check = Counter(v.check for v in found)
        doubles = sum(1 for v in found if v.check == "charges")
        broken = list(record.broken_promises)
        broken += [f"coupon of {c} given to the chatbot, not held" for c in missing_coupons]
        return Row(
            scenario=name,
            faults=dict(chaos.actions),
            accepted=len(accepted_ids),
            terminal=terminal,
            lost=len(accepted_ids) - terminal + stranded,
            oversold=by_check["stock"] + by_check["coupons"] + len(over_limit),
            over_budget=by_check["budget"],
            double_charges=doubles,
            server_errors=len(record.server_errors),
            broken=len(broken),
            unanswered=record.gave_up,
            recover_seconds=recover,
            restarts=dict(restarts),
            redelivered=redelivered,
            shoppers=record.summary(),
            violations=[str(v) for v in found[:50]] + broken[:50],
            fault_log=chaos.log[:200],
        )

    def _worker_log_sizes(self) -> dict[Path, int]:
        assert self.supervisor is not None  # noqa: S101
        return {p: p.stat().st_size for p in self.supervisor.stack.logs.glob("worker-*.log")}

    def _redelivered(self, marks: dict[Path, int]) -> int:
        """Task messages received more than once (same task id) across the workers since the
        scenario began, from their logs: duplicates and redeliveries that really happened."""
        assert self.supervisor is not None  # noqa: S101
        seen: Counter[str] = Counter()
        pattern = re.compile(rb"Task [\w.]+\[([0-9a-f-]{36})\] received")
        for path in self.supervisor.stack.logs.glob("worker-*.log"):
            with path.open("rb") as log:
                log.seek(marks.get(path, 0))
                seen.update(m.decode() for m in pattern.findall(log.read()))
        return sum(n - 1 for n in seen.values() if n > 1)


# --- report -----------------------------------------------------------------------------

COLUMNS = (
    ("fault", 18),
    ("accepted", 8),
    ("terminal", 8),
    ("lost", 4),
    ("oversold", 8),
    ("over budget", 11),
    ("double charges", 14),
    ("5xx", 4),
    ("broken", 6),
    ("unanswered", 10),
    ("recover s", 9),
    ("verdict", 7),
)


def table(rows: list[Row]) -> str:
    head = " | ".join(name.ljust(width) for name, width in COLUMNS)
    lines = [head, "-+-".join("-" * width for _, width in COLUMNS)]
    for r in rows:
        cells = (
            r.scenario,
            r.accepted,
            r.terminal,
            r.lost,
            r.oversold,
            r.over_budget,
            r.double_charges,
            r.server_errors,
            r.broken,
            r.unanswered,
            "-" if r.recover_seconds is None else r.recover_seconds,
            "pass" if r.passed else "FAIL",
        )
        lines.append(
            " | ".join(str(c).ljust(width) for c, (_, width) in zip(cells, COLUMNS, strict=True))
        )
    return "\n".join(lines)


def details(rows: list[Row]) -> str:
    out = []
    for r in rows:
        faults = ", ".join(f"{what} x{n}" for what, n in sorted(r.faults.items()))
        restarts = ", ".join(f"{p} x{n}" for p, n in sorted(r.restarts.items())) or "none"
        out.append(f"{r.scenario}: {faults or 'no fault'}")
        out.append(
            f"  restarted by the supervisor: {restarts}; messages delivered twice: {r.redelivered}"
        )
        answers = ", ".join(f"{k}: {v}" for k, v in r.shoppers["answers"].items())
        out.append(f"  answers: {answers}")
        if r.shoppers["transport_errors"]:
            out.append(f"  transport errors (retried): {r.shoppers['transport_errors']}")
        out.extend(f"  ! {v}" for v in r.violations[:10])
        out.extend(f"  ! {s}" for s in r.shoppers["server_error_samples"])
    return "\n".join(out)


def command() -> str:
    """How this run was started (`BENCH_COMMAND`, as the Makefile sets it, or the argv)."""
    return os.environ.get("BENCH_COMMAND") or " ".join(["python -m bench.chaos", *sys.argv[1:]])


def say(text: str) -> None:
    print(f"chaos: {text}", flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.chaos",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--mode", choices=sorted(MODES), default="short")
    parser.add_argument(
        "--scenario",
        action="append",
        choices=sorted(SCENARIOS),
        help="run only this scenario (repeatable); default: all, in the documented order",
    )
    parser.add_argument(
        "--json",
        type=Path,
        help="write the results here, and nowhere else (default: bench/runs/chaos-*/, "
        "with a line in bench/results/INDEX.md)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    mode = MODES[args.mode]
    scenarios = args.scenario or list(SCENARIOS)
    run_dir = RUN_DIR / args.mode
    shutil.rmtree(run_dir / "logs", ignore_errors=True)
    run = Run(mode, run_dir=run_dir)
    commit = results_index.commit()  # before the run, whose index line changes the tree
    began = time.monotonic()
    rows: list[Row] = []
    try:
        run.start(scenarios)
        for name in scenarios:
            rows.append(run.scenario(name))
            print(table(rows[-1:]).splitlines()[-1], flush=True)
    finally:
        run.stop()
    print()
    print(table(rows))
    print()
    print(details(rows))
    elapsed = round(time.monotonic() - began)
    result = {
        "mode": args.mode,
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "seconds": elapsed,
        "mode_settings": asdict(mode),
        "rows": [{**asdict(r), "passed": r.passed} for r in rows],
        "passed": all(r.passed for r in rows),
    }
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1))
        say(f"results in {args.json}")
    else:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        folder = RUNS / f"chaos-{args.mode}-{stamp}"
        folder.mkdir(parents=True, exist_ok=True)
        result = {**result, "command": command(), "commit": commit}
        path = folder / f"{folder.name}.json"
        path.write_text(json.dumps(result, indent=1))
        results_index.append_written(path)
        print(results_index.recorded(folder, logs=run_dir / "logs"))
    failed = [r.scenario for r in rows if not r.passed]
    passed = len(rows) - len(failed)
    print(f"\nchaos {args.mode}: {passed} passed, {len(failed)} failed in {elapsed} s")
    return 1 if failed else 0
