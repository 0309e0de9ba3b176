"""config.sql.rows_update: many rows, each with its own values, in one statement."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from config.sql import rows_update
from orders.models import CallbackDelivery
from tests.factories.orders import place
from tests.factories.shop import ProductFactory

pytestmark = pytest.mark.django_db


def test_each_row_gets_its_own_values_in_one_statement(chatbot) -> None:
    # given: three deliveries
    order = place(chatbot, "c-1", [(ProductFactory(), 1)])
    rows = [
        CallbackDelivery.objects.create(
            order=order, url="https://x.example/", order_status=s, payload={}
        )
        for s in ("reserved", "paid", "refunded")
    ]
    now = timezone.now()
    for i, row in enumerate(rows):
        row.attempts = i + 1
        row.next_attempt_at = now + timedelta(seconds=i)
        row.last_error = "" if i else "HTTP 502"
        row.delivered_at = None if i < 2 else now
    untouched = CallbackDelivery.objects.create(
        order=order, url="https://x.example/", order_status="other", payload={}
    )
    # when
    with CaptureQueriesContext(connection) as queries:
        updated = rows_update(
            CallbackDelivery, rows, ["attempts", "next_attempt_at", "last_error", "delivered_at"]
        )
    # then
    assert updated == 3
    assert len(queries) == 1
    got = {
        d.pk: (d.attempts, d.next_attempt_at, d.last_error, d.delivered_at)
        for d in CallbackDelivery.objects.all()
    }
    for i, row in enumerate(rows):
        assert got[row.pk] == (i + 1, now + timedelta(seconds=i), row.last_error, row.delivered_at)
    assert got[untouched.pk][0] == 0


def test_nothing_to_write_sends_nothing() -> None:
    with CaptureQueriesContext(connection) as queries:
        assert rows_update(CallbackDelivery, [], ["attempts"]) == 0
    assert len(queries) == 0
