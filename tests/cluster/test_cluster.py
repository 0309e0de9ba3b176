"""The cluster as production runs it (docs/cluster.md): a burst of the chaos suite's shoppers
(bench/chaos/shoppers.py: claim, order, replays, cancels, every request retried with its
Idempotency-Key) through HAProxy while a host is lost, and while an upgrade rolls through;
then every invariant (bench/invariants.py) against the database, the gateway's ledger and
what the shoppers were told."""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx
import psycopg
import pytest

from bench.chaos.shoppers import Record, Shoppers
from bench.invariants import TERMINAL, check_invariants
from devtools.cluster import Cluster

pytestmark = pytest.mark.cluster
QUIET_SECONDS = 60.0
# HAProxy asks /readyz every second (inter 1s) and takes a host out after two failures
# (fall 2); a check to a cut link fails when its connect times out (timeout connect 1s).
OUT_WITHIN_SECONDS = 4.0


class Burst:
    """Shoppers of one campaign, open loop, on a thread of their own."""

    def __init__(self, cluster: Cluster, fixtures: dict[str, Any], name: str, rate: float):
        self.campaign = fixtures["campaigns"][name]
        self.shoppers = Shoppers(
            base_url=cluster.url,
            api_key=fixtures["api_key"],
            slug=self.campaign["slug"],
            skus=self.campaign["skus"],
            tag=name,
        )
        count = self.campaign["coupons_total"] * 10 // 9
        self.thread = threading.Thread(
            target=self.shoppers.run, kwargs={"shoppers": count, "rate": rate}
        )
        self.thread.start()

    def join(self) -> Record:
        self.thread.join()
        return self.shoppers.record


def quiet(cluster: Cluster, campaign_id: int) -> None:
    """Until every order of the campaign is terminal."""
    deadline = time.monotonic() + QUIET_SECONDS
    while True:
        with psycopg.connect(cluster.postgres_url) as conn:
            (live,) = conn.execute(
                "SELECT count(*) FROM orders_order"
                " WHERE campaign_id = %s AND NOT (status = ANY(%s))",
                [campaign_id, list(TERMINAL)],
            ).fetchone()
        if live == 0:
            return
        assert time.monotonic() < deadline, f"{live} orders still live after {QUIET_SECONDS} s"
        time.sleep(0.5)


def judge(cluster: Cluster, burst: Burst, record: Record) -> None:
    """Nothing acknowledged is lost, nothing parked, every invariant holds, no 5xx."""
    quiet(cluster, burst.campaign["campaign_id"])
    ledger = httpx.get(
        f"{cluster.sandbox_url}/_sandbox/ledger",
        headers={"Authorization": f"Bearer {cluster.sandbox_key}"},
        timeout=30,
    ).json()
    accepted = set(record.accepted.values())
    with psycopg.connect(cluster.postgres_url) as conn:
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        found = check_invariants(conn, ledger, accepted)
        stored = {
            oid
            for (oid,) in conn.execute(
                "SELECT public_id::text FROM orders_order WHERE public_id::text = ANY(%s)",
                [list(accepted)],
            ).fetchall()
        }
        (parked,) = conn.execute(
            "SELECT count(*) FROM orders_order WHERE parked_at IS NOT NULL"
        ).fetchone()
        (payments_parked,) = conn.execute(
            "SELECT count(*) FROM orders_payment WHERE status = 'parked'"
        ).fetchone()
        conn.rollback()
    assert accepted, record.summary()
    assert stored == accepted, f"acknowledged but not stored: {sorted(accepted - stored)[:5]}"
    assert [str(v) for v in found] == []
    assert (parked, payments_parked) == (0, 0)
    assert record.server_errors == []
    assert record.broken_promises == []
    assert record.gave_up == 0


def test_host_loss(cluster: Cluster, fixtures: dict[str, Any]) -> None:
    # given: a burst through HAProxy, both hosts serving
    burst = Burst(cluster, fixtures, "host_loss", rate=12)
    deadline = time.monotonic() + 10
    while int(cluster.stats()["h2"]["stot"]) < 20:  # h2 is serving its share
        assert time.monotonic() < deadline, "h2 got nothing before it was lost"
        time.sleep(0.1)

    # when: h2 is lost (every process SIGKILLed, its link cut)
    lost_at = time.monotonic()
    cluster.kill_host("h2")
    cluster.wait_servers(down={"h2"}, seconds=15)
    out_after = time.monotonic() - lost_at
    sent_when_out = int(cluster.stats()["h2"]["stot"])
    time.sleep(3)  # the burst goes on against h1 alone
    sent_later = int(cluster.stats()["h2"]["stot"])
    cluster.revive_host("h2")
    cluster.wait_servers(up={"h1", "h2"})
    record = burst.join()

    # then: HAProxy took h2 out within its check interval and sent it nothing while out
    assert out_after <= OUT_WITHIN_SECONDS, f"h2 taken out after {out_after:.1f} s"
    assert sent_later == sent_when_out
    judge(cluster, burst, record)


def test_rolling_upgrade(cluster: Cluster, fixtures: dict[str, Any]) -> None:
    # given: a burst through HAProxy
    burst = Burst(cluster, fixtures, "rolling", rate=8)
    time.sleep(1)  # the burst is under way

    # when: an expand migration is applied while serving (a nullable column, as the expand
    # step of docs/operations.md "Changing the schema" adds one), then each host is drained
    # and restarted in turn
    with psycopg.connect(cluster.postgres_url, autocommit=True) as conn:
        conn.execute("SET lock_timeout = '2s'")
        conn.execute("ALTER TABLE orders_order ADD COLUMN IF NOT EXISTS upgrade_note text NULL")
    for host in cluster.hosts:
        cluster.drain(host)
        ready = httpx.get(f"{cluster.web_url(host)}/readyz", timeout=5)
        assert (ready.status_code, ready.json()) == (503, {"status": "draining"})
        cluster.restart_host(host)
    record = burst.join()

    # then: no 5xx, nothing lost, nothing parked, every invariant holds
    assert record.answers["order 202"] > 0
    judge(cluster, burst, record)
