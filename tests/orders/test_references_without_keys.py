"""An order's client, campaign and coupon and a line's product have no database foreign key
(docs/architecture.md, References without database keys): the INSERT takes no lock on those
hot parent rows, and no orphan can appear because the parents are never deleted, whatever
runs at the same time. Each interleaving is forced on two real connections. The rows that
name an order have no key to it either, and orders are never deleted (the last tests)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
import pytest
from django.db import IntegrityError, connection
from django.db.models import ProtectedError
from django.utils import timezone

from bench.invariants import orphans
from coupons.models import Campaign, Coupon
from orders import sql
from orders.models import Order
from shop.models import ApiClient, Product
from tests.conftest import database_url_of_tests
from tests.factories.coupons import CampaignFactory
from tests.factories.orders import claim, place
from tests.factories.shop import ApiClientFactory, ProductFactory

pytestmark = pytest.mark.django_db(transaction=True)  # the other connections see commits

PARENTS = {
    "shop_apiclient": "client",
    "coupons_campaign": "campaign",
    "coupons_coupon": "coupon",
    "shop_product": "product",
}


@dataclass
class Scene:
    client: ApiClient
    campaign: Campaign
    coupon: Coupon
    product: Product

    def id_of(self, table: str) -> int:
        return getattr(self, PARENTS[table]).pk

    def order_insert(self, cursor: psycopg.Cursor) -> int:
        """The intake's own INSERT (orders.sql.ORDER_INSERT) of one order naming them all."""
        now = timezone.now()
        cursor.execute(
            sql.ORDER_INSERT,
            [
                uuid.uuid4(), self.client.pk, self.coupon.customer_id, self.campaign.pk,
                self.coupon.pk, self.coupon.code, Order.Status.RECEIVED.value, 3000, 2500, 500,
                "CNY", "", uuid.uuid4().hex, "0" * 64, None, now, now, "", True,
                [self.product.pk], [self.product.sku], [1], [3000],
            ],
            prepare=True,
        )  # fmt: skip
        return cursor.fetchone()[0]


@pytest.fixture
def scene() -> Scene:
    client = ApiClientFactory()
    campaign = CampaignFactory(coupons_total=10, budget_total=25_000)
    return Scene(client, campaign, claim(client, campaign, "c-1"), ProductFactory(price=3000))


@pytest.fixture
def other() -> Iterator[psycopg.Connection]:
    """Connections of their own, each with a short lock_timeout: a wait is a failure."""
    opened: list[psycopg.Connection] = []

    def connect() -> psycopg.Connection:
        conn = psycopg.connect(database_url_of_tests())
        conn.execute("SET lock_timeout = '2s'")
        conn.commit()
        opened.append(conn)
        return conn

    yield connect
    for conn in opened:
        conn.close()


def no_orphans() -> list:
    with connection.cursor() as cursor:
        return orphans(cursor)


@pytest.mark.parametrize("table", PARENTS)
def test_a_parent_is_never_deleted_even_with_no_order(table: str, scene: Scene) -> None:
    # when: a parent no order names yet is deleted in SQL
    with pytest.raises(IntegrityError, match="never deleted"), connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {table} WHERE id = %s", [scene.id_of(table)])  # noqa: S608
    # then: it is still there


@pytest.mark.parametrize("table", PARENTS)
def test_a_delete_during_an_uncommitted_order_insert_is_refused(
    table: str, scene: Scene, other
) -> None:
    # given: an order INSERT naming the parent, not committed yet (no key: no lock taken)
    inserter, deleter = other(), other()
    with inserter.cursor() as cursor:
        order_id = scene.order_insert(cursor)
    # when: another connection deletes the parent meanwhile
    with pytest.raises(psycopg.errors.RestrictViolation), deleter.cursor() as cursor:
        cursor.execute(f"DELETE FROM {table} WHERE id = %s", [scene.id_of(table)])  # noqa: S608
    deleter.rollback()
    inserter.commit()
    # then: the order committed, its parent is there: no orphan
    assert Order.objects.filter(pk=order_id).exists()
    assert no_orphans() == []


@pytest.mark.parametrize("table", PARENTS)
def test_an_order_insert_during_an_uncommitted_delete_leaves_no_orphan(
    table: str, scene: Scene, other
) -> None:
    # given: a transaction that tried to delete the parent first, still open
    inserter, deleter = other(), other()
    with pytest.raises(psycopg.errors.RestrictViolation), deleter.cursor() as cursor:
        cursor.execute(f"DELETE FROM {table} WHERE id = %s", [scene.id_of(table)])  # noqa: S608
    # when: an order naming it is inserted and committed before the deleter ends
    with inserter.cursor() as cursor:
        scene.order_insert(cursor)
    inserter.commit()
    deleter.rollback()
    # then
    assert no_orphans() == []


def test_the_order_insert_takes_no_lock_on_its_parents(scene: Scene, other) -> None:
    # given: another transaction holds every parent row FOR UPDATE, which conflicts with the
    # FOR KEY SHARE a foreign key's check takes
    holder, inserter = other(), other()
    with holder.cursor() as cursor:
        for table in PARENTS:
            cursor.execute(
                f"SELECT 1 FROM {table} WHERE id = %s FOR UPDATE",  # noqa: S608
                [scene.id_of(table)],
            )
    # when: the intake's INSERT runs and commits (lock_timeout 2 s: a wait would fail it)
    with inserter.cursor() as cursor:
        order_id = scene.order_insert(cursor)
    inserter.commit()
    holder.rollback()
    # then
    assert Order.objects.filter(pk=order_id).exists()


def test_the_orm_still_protects_a_parent_an_order_names(scene: Scene) -> None:
    # given: a committed order naming all four
    place(scene.client, "c-1", [(scene.product, 1)], coupon=scene.coupon)
    # when / then: Django's PROTECT refuses before the database is asked
    for parent in (scene.client, scene.campaign, scene.coupon, scene.product):
        with pytest.raises(ProtectedError):
            parent.delete()
    assert no_orphans() == []


# The rows that name an order (lines, hold, payment, refund, events, callbacks) have no
# database key to it either (orders 0018): orders are never deleted.


def test_an_order_is_never_deleted(scene: Scene) -> None:
    # given: a committed order
    order = place(scene.client, "c-1", [(scene.product, 1)], coupon=scene.coupon)
    # when: it is deleted in SQL (as a wiped table or a stray script would)
    with pytest.raises(IntegrityError, match="never deleted"), connection.cursor() as cursor:
        cursor.execute("DELETE FROM orders_order WHERE id = %s", [order.pk])
    # then: it is still there, and so is every row that names it
    assert Order.objects.filter(pk=order.pk).exists()
    assert no_orphans() == []


def test_no_row_names_an_order_through_a_database_key() -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT conrelid::regclass::text FROM pg_constraint"
            " WHERE contype = 'f' AND confrelid = 'orders_order'::regclass"
        )
        assert cursor.fetchall() == []


def test_an_event_for_an_order_takes_no_lock_on_it(scene: Scene, other) -> None:
    # given: another transaction holds the order's row FOR UPDATE, which conflicts with the
    # FOR KEY SHARE a key's check would take on it
    order = place(scene.client, "c-1", [(scene.product, 1)], coupon=scene.coupon)
    holder, writer = other(), other()
    holder.execute("SELECT 1 FROM orders_order WHERE id = %s FOR UPDATE", [order.pk])
    # when: a row naming the order is written and committed (lock_timeout 2 s: a wait fails)
    writer.execute(
        "INSERT INTO orders_orderevent (order_id, source, target, actor, data, created_at)"
        " VALUES (%s, 'received', 'received', 'test', '{}', now())",
        [order.pk],
    )
    writer.commit()
    holder.rollback()
    # then
    assert order.events.filter(actor="test").exists()
