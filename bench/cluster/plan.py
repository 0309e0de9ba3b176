"""The cluster benchmark's two forms as data: the single-host Plan (bench/plan.py) with
shorter phases, since each form runs every phase twice (1 host, then 3) plus the Python
door's overload. `quick` is for development (about 4 minutes); `full` fits in about 15."""

from __future__ import annotations

from bench.plan import Plan

QUICK = Plan(
    mode="cluster-quick",
    floor_seconds=4,  # the intake saturation probe
    noop_tasks=0,
    claim_rates=(),
    claim_step_seconds=0,
    intake_rates=(150,),
    intake_step_seconds=4,
    e2e_probe_seconds=0,
    e2e_probes=0,
    e2e_seconds=12,
    overload_seconds=8,
    backlog_seconds=0,
    scale_sizes=(),
    scale_rate=0,
    scale_seconds=0,
    wait_claims=0,
    wait_intake=12,
    wait_e2e=10,
    wait_overload=12,
)

FULL = Plan(
    mode="cluster-full",
    floor_seconds=15,
    noop_tasks=0,
    claim_rates=(),
    claim_step_seconds=0,
    intake_rates=(200, 400, 600),
    intake_step_seconds=10,
    e2e_probe_seconds=20,
    e2e_probes=2,
    e2e_seconds=60,
    overload_seconds=30,
    backlog_seconds=0,
    scale_sizes=(),
    scale_rate=0,
    scale_seconds=0,
    wait_claims=0,
    wait_intake=60,
    wait_e2e=60,
    wait_overload=60,
)

PLANS = {"quick": QUICK, "full": FULL}
# The phases of bench/phases.py that the cluster form runs; the others are skipped.
RUNS = ("intake", "e2e", "overload")
