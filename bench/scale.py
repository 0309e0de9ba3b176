"""The scale probe: does intake slow down when the line is long? Intake latency at a modest
fixed rate with 0, 100 k and (full mode) 1 M orders already waiting.

The reservation worker is stopped first, so nothing leaves the line. Waiting orders are
bulk-inserted in SQL (bench/seed.py: each with a coupon and a line, tickets after the
line's last one). After each insert the fast state (Redis DB 10) is flushed, so intake
rebuilds the line's counters from the database, its own path after a Redis restart, and
no Redis key is written by hand. The probe's orders use their own campaign and its seeded
coupons; the invariants were checked before the probe, which leaves these orders waiting.

Redis memory per waiting order is measured around the first (empty-line) probe, whose
orders went through the real intake path: the bytes of this run's keys (DB 10 and 11, by
MEMORY USAGE) and INFO used_memory (the whole, shared server), before and after, divided
by the orders it accepted.
"""

from __future__ import annotations

import time
from typing import Any

import redis

from bench import seed
from bench.loadclient import LoadClient
from bench.measure import Sampler, redis_memory
from bench.plan import Plan
from bench.roundtrips import RoundTrips
from bench.stack import DATABASE_URL, REDIS_URL, Stack

SCALE_COUPON_BASE = 900_000_000  # seeded coupon numbers of the probe, apart from the burst's
SATURATION_GUESS = 1500  # orders/s a closed-loop probe could reach at most, to size the pool


def run_scale_probe(
    *,
    plan: Plan,
    stack: Stack,
    load: LoadClient,
    sampler: Sampler,
    fixtures: seed.Fixtures,
    keepalive: int = 0,
) -> dict[str, Any]:
    """`keepalive`: the pool the intake phase sent on (bench.run --keepalive), so that intake
    alone compares with intake and the floors like with like."""
    stack.stop("worker-reservations")
    sampler.db_enabled = False  # counting a 1 M line every second would load the probe itself
    per_probe = int(plan.scale_rate * plan.scale_seconds)
    coupons = per_probe * len(plan.scale_sizes) + int(SATURATION_GUESS * plan.floor_seconds) + 1000
    load.call("clear_pool")
    seed.seed_coupons(
        campaign_id=fixtures.scale_campaign_id,
        client_id=fixtures.client_id,
        start=SCALE_COUPON_BASE,
        count=coupons,
        decline_every=0,
    )
    load.call("add_seeded", start=SCALE_COUPON_BASE, count=coupons, decline_every=0)
    probes: list[dict[str, Any]] = []
    waiting = 0
    alone: dict[str, Any] = {}
    memory: dict[str, Any] = {}
    for size in plan.scale_sizes:
        if size > waiting:
            print(f"  inserting {size - waiting:,} waiting orders ...", flush=True)
            began = time.monotonic()
            seed.seed_waiting_orders(fixtures=fixtures, start=waiting + 1, count=size - waiting)
            insert_seconds = time.monotonic() - began
            waiting = size
        else:
            insert_seconds = 0.0
        redis.Redis.from_url(REDIS_URL).flushdb()
        time.sleep(1.0)
        before = redis_memory()
        t0, cpu0 = sampler.snapshot()
        summary = load.run(
            {
                "phase": f"scale-{size}",
                "kind": "orders",
                "mode": "open",
                "keepalive": keepalive,
                "steps": [{"rate": plan.scale_rate, "duration": plan.scale_seconds}],
                "connections": plan.connections,
                "timeout": plan.request_timeout,
                "replay_share": 0,
                "skus": list(seed.SKUS),
            }
        )
        t1, cpu1 = sampler.snapshot()
        after = redis_memory()
        step = summary["steps"][0]
        accepted = step["accepted"]
        if not memory and accepted:
            memory = {
                "orders": accepted,
                "keys_bytes_per_order": (
                    after["fast_db_bytes"]
                    + after["broker_db_bytes"]
                    - before["fast_db_bytes"]
                    - before["broker_db_bytes"]
                )
                / accepted,
                "used_memory_bytes_per_order": (after["used_memory"] - before["used_memory"])
                / accepted,
                "before": before,
                "after": after,
            }
        probes.append(
            {
                "waiting_before": waiting,
                "nominal": size,
                "insert_seconds": insert_seconds,
                "rate": plan.scale_rate,
                "seconds": plan.scale_seconds,
                "step": step,
                "gunicorn_cpu_ms_per_order": (
                    (cpu1.get("gunicorn", 0) - cpu0.get("gunicorn", 0)) * 1000 / accepted
                    if accepted
                    else None
                ),
                "window": [t0, t1],
                "redis_after": after,
            }
        )
        waiting += accepted
        p50 = step["latency_ms"]["p50"]
        print(
            f"  {probes[-1]['waiting_before']:>9,} waiting: p50 {p50 or 0:.1f} ms, "
            f"p99 {step['latency_ms']['p99'] or 0:.1f} ms, accepted {accepted}",
            flush=True,
        )
        if not alone:
            alone = _intake_alone(plan=plan, load=load, sampler=sampler, keepalive=keepalive)
            waiting += alone["steps"][0]["accepted"]
    final = redis_memory()
    memory["at_end"] = {
        "waiting_orders": waiting,
        "keys_bytes": final["fast_db_bytes"] + final["broker_db_bytes"],
        "keys_bytes_per_waiting_order": (final["fast_db_bytes"] + final["broker_db_bytes"])
        / max(1, waiting),
    }
    return {"probes": probes, "redis_memory": memory, "intake_alone": alone}


def _intake_alone(
    *, plan: Plan, load: LoadClient, sampler: Sampler, keepalive: int
) -> dict[str, Any]:
    """Intake alone: the same closed-loop saturation as in the intake phase, but with
    nothing taking orders out of the line (so nothing locks the campaign row meanwhile)."""
    trips = RoundTrips(DATABASE_URL, REDIS_URL)
    trips.start()
    _, cpu0 = sampler.snapshot()
    alone = load.run(
        {
            "phase": "scale-saturation",
            "kind": "orders",
            "mode": "closed",
            "keepalive": keepalive,
            "steps": [{"duration": plan.floor_seconds}],
            "connections": plan.closed_connections,
            "timeout": plan.request_timeout,
            "replay_share": 0,
            "skus": list(seed.SKUS),
        }
    )
    _, cpu1 = sampler.snapshot()
    step = alone["steps"][0]
    alone["roundtrips"] = trips.stop(per=step["accepted"])
    step["gunicorn_cpu_ms_per_request"] = (
        (cpu1.get("gunicorn", 0) - cpu0.get("gunicorn", 0)) * 1000 / step["accepted"]
        if step["accepted"]
        else None
    )
    print(
        f"  intake saturation with the reservation worker stopped: "
        f"{step['accepted_per_s']:.0f} orders/s, p99 {step['latency_ms']['p99'] or 0:.0f} ms",
        flush=True,
    )
    return alone
