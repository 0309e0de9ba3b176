"""bench.hot_rows's two key modes are what they claim: `on` gives the hot columns real
foreign keys (an orphan is refused), `off` leaves none. The ALTERs run inside the test's
transaction, which rolls back."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, connection, transaction

from bench.hot_rows import HOT_KEYS, fks, schema_keys
from shop.models import ApiClient
from tests.factories.coupons import CampaignFactory
from tests.factories.orders import claim, place
from tests.factories.shop import ProductFactory

pytestmark = pytest.mark.django_db


def orphan_the_order(order_id: int) -> None:
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute("UPDATE orders_order SET client_id = -1 WHERE id = %s", [order_id])
        assert cursor.rowcount == 1


def test_the_schema_keeps_only_the_coupons_keys_to_the_hot_rows() -> None:
    with connection.cursor() as cursor:
        assert schema_keys(cursor) == {
            ("coupons_coupon", "campaign_id"),
            ("coupons_coupon", "client_id"),
        }


def test_on_adds_every_key_and_off_drops_them(chatbot: ApiClient) -> None:
    # given: an order
    campaign = CampaignFactory(coupons_total=10, budget_total=25_000)
    product = ProductFactory(price=3000, stock=5)
    order = place(chatbot, "c-1", [(product, 1)], coupon=claim(chatbot, campaign, "c-1"))
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # pending checks would block ALTER
        # when: the keys are on
        fks(cursor, True)
        # then: every hot column has one, and it refuses an orphan
        assert schema_keys(cursor) == {(table, column) for table, column, _ in HOT_KEYS}
    with pytest.raises(IntegrityError, match="foreign key"):
        orphan_the_order(order.pk)
    with connection.cursor() as cursor:
        # when: the keys are off
        fks(cursor, False)
        # then: none is left, and nothing refuses it
        assert schema_keys(cursor) == set()
    orphan_the_order(order.pk)
