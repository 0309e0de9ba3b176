"""The cluster benchmark's own logic (bench/cluster/): where its load generator and samplers
point, how a process of the cluster is counted, and the figures it pairs across host counts.
The benchmark itself runs by hand (make bench-cluster): it needs minutes and the whole
machine."""

from __future__ import annotations

from typing import Any

import pytest

from bench.cluster.cli import CALLBACK_OFFSET, addresses, parse_args
from bench.cluster.place import kind_of
from bench.cluster.report import comparison, judged
from devtools.cluster import Cluster


def test_addresses_follow_the_clusters_port_and_its_hosts_reach_the_receiver() -> None:
    cluster = Cluster(hosts=3, port=25000, namespaces=True)
    found = addresses(cluster)
    db = cluster.net.address("db")
    assert found["BENCH_DATABASE_URL"] == f"postgres://postgres@{db}:5432/campaign"
    assert found["BENCH_REDIS_URL"] != found["BENCH_BROKER_URL"]
    assert found["BENCH_WEB_PORT"] == "25000"  # HAProxy, not a host
    # Inside its namespace a host's 127.0.0.1 is its own: callbacks go to the bridge.
    assert found["BENCH_CALLBACK_HOST"] == f"{cluster.net.prefix}.1"
    assert found["BENCH_CALLBACK_PORT"] == str(25000 + CALLBACK_OFFSET)
    loopback = addresses(Cluster(hosts=3, port=25000, namespaces=False))
    assert loopback["BENCH_CALLBACK_HOST"] == "127.0.0.1"
    assert loopback["BENCH_DATABASE_URL"].startswith("postgres://postgres@127.0.0.1:25001/")


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("h1-gunicorn", "gunicorn"),
        ("h12-worker-payments", "worker-payments"),
        ("db-pgbouncer", "pgbouncer"),
        ("lb-haproxy", "haproxy"),
        ("loadgen", "loadgen"),
        ("hx-gunicorn", "hx-gunicorn"),
    ],
)
def test_a_process_counts_under_its_kind_whatever_its_host(name: str, kind: str) -> None:
    assert kind_of(name) == kind


@pytest.mark.parametrize("hosts", ["0", "1,x", ""])
def test_host_counts_are_checked_before_anything_starts(hosts: str) -> None:
    with pytest.raises(SystemExit):
        parse_args(["--hosts", hosts])


def _config(
    hosts: int, cpu: dict[str, float], stot: list[int], saturation: float, lock: float = 0.0
) -> dict:
    top = [
        ["running WITH orders_order", 0.5],
        ["Lock:transactionid in SELECT coupons_campaign", lock],
    ]
    return {
        "hosts": hosts,
        "db_waits": {"e2e": {"top": top}},
        "e2e": {"cpu_ms_per_paid_order": cpu, "paid_per_s": 100.0},
        "intake": {"saturation": {"accepted_per_s": saturation}},
        "servers": {f"h{i + 1}": {"stot": n} for i, n in enumerate(stot)},
    }


def test_per_order_cost_is_paired_from_one_host_to_three() -> None:
    one = _config(1, {"gunicorn": 4.0, "haproxy": 0.5, "pgbouncer": 1.0, "loadgen": 2.0}, [90], 400)
    three = _config(
        3,
        {"gunicorn": 5.0, "haproxy": 0.5, "pgbouncer": 1.5, "loadgen": 2.0},
        [30, 30, 40],
        380,
        0.25,
    )
    found = comparison([one, three])
    # The harness (loadgen) is not the product's cost.
    assert found["cpu_ms_per_paid_order_product"] == [5.5, 7.0]
    assert found["ratio_last_over_first"]["product"] == pytest.approx(7.0 / 5.5, abs=1e-3)
    assert found["ratio_last_over_first"]["gunicorn"] == 1.25
    assert found["haproxy_pgbouncer_ms_per_paid_order"] == [1.5, 2.0]
    assert found["intake_saturation_ratio"] == 0.95
    assert found["request_share_by_host"]["3"] == {"h1": 0.3, "h2": 0.3, "h3": 0.4}
    assert found["e2e_db_lock_wait_share"] == [0.0, 0.25]


def _overload(factor: float, accepted: float, p99: float, **counts: int) -> dict[str, Any]:
    step = {
        "accepted_per_s": accepted,
        "http_429": 10,
        "http_5xx": counts.get("http_5xx", 0),
        "timeouts": counts.get("timeouts", 0),
        "not_sent": 0,
        "duration": 8,
        "latency_all_ms": {"p50": 10.0, "p99": p99},
    }
    return {
        "factor": factor,
        "rate": 100.0 * factor,
        "goodput_vs_saturation": accepted / 100.0,
        "summary": {"steps": [step]},
    }


def test_overload_is_judged_against_the_single_hosts_targets() -> None:
    verdicts = {
        v["name"]: v["passed"]
        for v in judged([_overload(2.0, 95, 120), _overload(5.0, 65, 300, http_5xx=1)], "3 hosts: ")
    }
    assert verdicts["3 hosts: overload 2x: accepted/s vs intake saturation"] is True
    assert verdicts["3 hosts: overload 2x: p99 of every answer"] is True
    assert verdicts["3 hosts: overload 5x: accepted/s vs intake saturation"] is False  # < 0.7
    assert verdicts["3 hosts: overload 5x: p99 of every answer"] is False  # 250 ms
    assert verdicts["3 hosts: overload 5x: 5xx answers"] is False
    assert verdicts["3 hosts: overload 5x: time-outs"] is True
    assert judged([], "no door: ") == []
