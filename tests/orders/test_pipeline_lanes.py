"""Several worker processes drain one stage of one campaign at once (orders.services.nudges'
lanes): two real Celery workers, one pool process each, against a campaign with four times
more orders than stock. The interleaving is forced, not hoped for: the test holds the
campaign's row while the pipeline runs, so every batch that reaches its counters waits there,
and it goes on only once two batches, from two processes, wait at once."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import psycopg
import pytest
from django.db import connection, transaction
from django.utils import timezone

from bench.invariants import check_invariants
from coupons.models import Campaign
from infra import fast
from orders import services
from orders.models import CallbackDelivery, Order
from orders.services.transitions import order_move
from shop.models import ApiClient
from tests.conftest import database_url_of_tests
from tests.factories.coupons import CampaignFactory
from tests.factories.orders import claim, place
from tests.factories.shop import ProductFactory
from tests.pipeline import all_terminal, ledger, wait_for
from tests.waiting import wait_until

pytestmark = [pytest.mark.pipeline, pytest.mark.django_db(transaction=True)]

ORDERS, STOCK, BATCH = 160, 40, 30
# What a batch waiting at its counters is running: the budget's conditional UPDATEs (held by
# a reservation batch, spent by a payment batch).
RESERVE_WAITS = "UPDATE coupons_campaign SET budget_held = budget_held +"
PAY_WAITS = "UPDATE coupons_campaign\nSET budget_held = budget_held -"


def campaign_with_line(chatbot: ApiClient, *, price: int) -> tuple[Campaign, list[Order]]:
    """ORDERS orders of as many customers, each with its coupon, for STOCK units."""
    campaign = CampaignFactory(coupons_total=ORDERS, max_discount=1000)
    product = ProductFactory(price=price, stock=STOCK)
    orders = [
        place(chatbot, f"c-{n}", [(product, 1)], coupon=claim(chatbot, campaign, f"c-{n}"))
        for n in range(ORDERS)
    ]
    return campaign, orders


def hold_row(campaign: Campaign) -> psycopg.Connection:
    """A transaction of the test's own that holds the campaign's row as a batch would."""
    holder = psycopg.connect(database_url_of_tests())
    holder.execute("SELECT 1 FROM coupons_campaign WHERE id = %s FOR NO KEY UPDATE", [campaign.pk])
    return holder


def waiting_at(statement: str) -> Callable[[], set[int]]:
    """The database backends whose statement starting `statement` waits for a lock."""

    def backends() -> set[int]:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s"
                " AND wait_event_type = 'Lock' AND position(%s in query) > 0",
                [connection.settings_dict["NAME"], statement],
            )
            return {pid for (pid,) in cursor.fetchall()}

    return backends


def both_waiting(backends: Callable[[], set[int]], *, what: str) -> set[int]:
    seen: set[int] = set()

    def two() -> bool:
        now = backends()
        seen.update(now)
        return len(now) >= 2

    # No sweep while the row is held: it could only add nudges to the ones under test.
    wait_until(two, what=what)
    return seen


def batches(log: Path, stage: str) -> list[int]:
    """The sizes of the batches one worker logged for `stage`, in its own log."""
    pattern = re.compile(rf"{stage} batch: .*?(\d+) (orders|deliveries)")
    return [int(m.group(1)) for m in pattern.finditer(log.read_text(errors="replace"))]


def two_workers_wait(
    start_worker, log_dir, holder, *, name, queues, env, waits, what
) -> tuple[list, list]:
    """Start two workers of `queues` (one pool process each, a log each), wait until both
    wait at once at `waits` behind the row `holder` holds, then let the row go: their logs
    and the backends seen waiting."""
    logs = [log_dir / f"lanes-{name}-{n}.log" for n in (1, 2)]
    for log in logs:
        log.write_text("")
    for n, log in enumerate(logs, 1):
        start_worker(queues, log=log.name, node=f"lanes{name}{n}", **env)
    try:
        waiters = both_waiting(waiting_at(waits), what=what)
    finally:
        holder.rollback()
        holder.close()
    return logs, waiters


def test_two_reservation_workers_take_one_campaigns_batches_at_once(
    chatbot, gateway, start_worker, log_dir
) -> None:
    # given: a line four times longer than the stock, nudged, and the campaign's row held
    campaign, orders = campaign_with_line(chatbot, price=3000)
    holder = hold_row(campaign)
    # when: two worker processes, one pool process each
    logs, waiters = two_workers_wait(
        start_worker,
        log_dir,
        holder,
        name="reserve",
        queues="reservations,payments,callbacks",
        env={"RESERVATION_BATCH_SIZE": str(BATCH), "WORKER_LANES": "2"},
        waits=RESERVE_WAITS,
        what="two batches at the counters",
    )
    wait_for(all_terminal(o.pk for o in orders), timeout=60, what="every order final")

    # then: two backends waited at once, and each process logged batches of its own
    assert len(waiters) >= 2
    assert all(batches(log, "reservation") for log in logs), [log.read_text() for log in logs]
    # one of the two decided again under the locks: the other had taken the stock it counted on
    assert any("decided again under locks" in log.read_text() for log in logs)
    # every promise kept: stock, coupons, budget, charges, nothing left unfinished
    accepted = [str(o.public_id) for o in orders]
    assert check_invariants(connection, ledger(gateway), accepted) == []
    final = dict(Order.objects.filter(pk__in=[o.pk for o in orders]).values_list("pk", "status"))
    sold = sorted(pk for pk, status in final.items() if status == Order.Status.PAID)
    assert len(sold) == STOCK
    # first come, first served up to the batches decided side by side (docs/architecture.md):
    # the first batch can lose its units to the second, decided beside it, and to the third,
    # decided while it is decided again; nobody further back got a unit
    passing = {o.pk for o in orders[: 3 * BATCH]}
    assert set(sold) <= passing
    assert {final[o.pk] for o in orders[3 * BATCH :]} == {Order.Status.REJECTED}
    # the line's counters: every ticket given has left the line, each exactly once
    given, left = fast.client().mget(
        fast.key("q", campaign.pk, "in"), fast.key("q", campaign.pk, "out")
    )
    assert int(given) == int(left) == ORDERS


def test_two_payment_workers_record_batches_at_once(
    chatbot, gateway, start_worker, log_dir
) -> None:
    # given: STOCK orders reserved here (their payment nudge is waiting), and the row held
    campaign, orders = campaign_with_line(chatbot, price=3000)
    while services.reservations_take_batch(campaign_id=campaign.pk, limit=ORDERS).seen:
        pass
    holder = hold_row(campaign)
    # when: two payment workers, one pool process each
    logs, waiters = two_workers_wait(
        start_worker,
        log_dir,
        holder,
        name="pay",
        queues="payments",
        env={"SETTLEMENT_BATCH_SIZE": str(STOCK // 2 - 5), "WORKER_LANES": "2"},
        waits=PAY_WAITS,
        what="two payment batches recording",
    )
    wait_for(all_terminal(o.pk for o in orders), timeout=60, what="every order final")

    # then: two processes recorded payments at once, each its own batches, every promise held
    assert len(waiters) >= 2
    assert all(batches(log, "payment") for log in logs), [log.read_text() for log in logs]
    accepted = [str(o.public_id) for o in orders]
    assert check_invariants(connection, ledger(gateway), accepted) == []
    paid = Order.objects.filter(campaign=campaign, status=Order.Status.PAID).count()
    assert paid == STOCK


class _Meeting(BaseHTTPRequestHandler):
    """A chatbot whose first POST waits (up to 20 s) for a second one to arrive beside it:
    it answers once two are in flight at once, and counts the most it ever saw."""

    lock = threading.Condition()
    in_flight = most = 0
    heard: ClassVar[list[str]] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        cls = type(self)
        with cls.lock:
            cls.in_flight += 1
            cls.most = max(cls.most, cls.in_flight)
            cls.lock.notify_all()
            cls.lock.wait_for(lambda: cls.most >= 2, timeout=20)
            cls.in_flight -= 1
            cls.heard.append(self.headers["X-Event-Id"])
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_two_callback_workers_post_at_once(chatbot, gateway, start_worker, log_dir) -> None:
    # given: orders told their final status, each owing one POST to a chatbot that answers
    # only once two POSTs are in flight together
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Meeting)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Meeting.in_flight = _Meeting.most = 0
    _Meeting.heard = []
    url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    product = ProductFactory(price=1800, stock=100)
    orders = [place(chatbot, f"c-{n}", [(product, 1)], callback_url=url) for n in range(24)]
    for order in orders:
        with transaction.atomic():
            locked = Order.objects.select_for_update().get(pk=order.pk)
            order_move(locked, Order.Status.CANCELLED, actor="test", now=timezone.now())
    # one POST at a time per worker: two in flight at once are two processes'
    env = {"CALLBACK_BATCH_SIZE": "6", "WORKER_LANES": "2", "PAYMENT_CONCURRENCY": "1"}
    logs = [log_dir / f"lanes-callback-{n}.log" for n in (1, 2)]
    for log in logs:
        log.write_text("")
    # when
    for n, log in enumerate(logs, 1):
        start_worker("callbacks", log=log.name, node=f"lanescb{n}", **env)
    owed = CallbackDelivery.objects.filter(order_status=Order.Status.CANCELLED)

    def delivered() -> bool:
        return not owed.exclude(state=CallbackDelivery.State.DELIVERED).exists()

    wait_until(delivered, what="every callback delivered", timeout=60)
    server.shutdown()

    # then: two POSTs were in flight at once, each worker sent batches, each status once
    assert _Meeting.most >= 2
    assert all(batches(log, "callback") for log in logs), [log.read_text() for log in logs]
    sent = {f"evt_{pk}" for pk in owed.values_list("pk", flat=True)}
    assert sorted(e for e in _Meeting.heard if e in sent) == sorted(sent)
