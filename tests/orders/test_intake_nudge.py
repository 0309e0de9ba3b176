"""Intake's coalesced wake-up: the nudge mark its Redis script takes before the INSERT is
given back when the INSERT fails, so the next order of an idle line publishes at once."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from django.conf import settings
from django.db import DatabaseError, connection

from orders.models import Order
from tests.factories.orders import place
from tests.factories.shop import ApiClientFactory, ProductFactory

pytestmark = pytest.mark.django_db(transaction=True)  # each INSERT commits, on_commit runs

QUEUE = "reservations"  # where the reservation nudges go (CELERY_TASK_ROUTES)


@pytest.fixture
def refused_customer() -> Iterator[str]:
    """A trigger at the real database that makes every INSERT of this customer's order fail."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            CREATE FUNCTION test_refuse_order() RETURNS trigger AS $$
            BEGIN RAISE EXCEPTION 'refused by the test'; END $$ LANGUAGE plpgsql;
            CREATE TRIGGER test_refuse_order BEFORE INSERT ON orders_order
            FOR EACH ROW WHEN (NEW.customer_id = 'refused') EXECUTE FUNCTION test_refuse_order();
            """
        )
    yield "refused"
    with connection.cursor() as cursor:
        cursor.execute(
            "DROP TRIGGER test_refuse_order ON orders_order; DROP FUNCTION test_refuse_order();"
        )


def test_an_order_whose_insert_failed_leaves_the_next_wake_up_free(refused_customer) -> None:
    # given: an idle line, and an order the database refuses after intake's script took the
    # line's nudge mark
    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    broker.delete(QUEUE)
    client, tea = ApiClientFactory(), ProductFactory()
    with pytest.raises(DatabaseError):
        place(client, refused_customer, [(tea, 1)])
    assert broker.llen(QUEUE) == 0  # nothing was committed, so nothing was announced
    # when: the next order comes in
    order = place(client, "c-1", [(tea, 1)])
    # then: its wake-up is published at once, not after the failed one's mark expires
    assert Order.objects.get().pk == order.pk
    assert broker.llen(QUEUE) == 1
    broker.delete(QUEUE)
