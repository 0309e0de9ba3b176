"""Fast at scale: change lists never count a big table, nor more than a few thousand rows of a
filter; the volume seeder fills a database the pages then read right."""

from __future__ import annotations

import io
import json
import re
import time
from typing import TYPE_CHECKING

import pytest
from django.apps import apps
from django.db import connection, models

from bench import seed_volume
from coupons.models import Campaign, Coupon
from coupons.selectors import campaign_coupons_issued
from infra.admin import EstimatedCountPaginator
from orders.models import Order, OrderEvent, Payment, Reservation
from shop.models import Product
from tests.admin.conftest import Scene, ensure_roles, figures, login, number

if TYPE_CHECKING:
    from django.test import Client


@pytest.mark.django_db
def test_filtered_lists_count_exactly_up_to_a_cap_then_estimate(
    scene: Scene, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given: ten orders of the campaign; counting stops after two
    monkeypatch.setattr(EstimatedCountPaginator, "exact_filtered_below", 2)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE orders_order")
    of_campaign = Order.objects.filter(campaign=scene.campaign).order_by("-id")
    # when
    capped = EstimatedCountPaginator(of_campaign, 100).count
    small = EstimatedCountPaginator(of_campaign.filter(status="received"), 100).count
    # then
    assert capped >= 3  # the planner's estimate, at least what was counted
    assert small == 2  # under the cap: exact


@pytest.mark.django_db
def test_a_filtered_count_that_runs_out_of_time_is_estimated(
    scene: Scene, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given: a filter no index serves, which takes 20 ms a row to test (ten orders: 200 ms),
    # and a paginator that counts for 50 ms at most
    monkeypatch.setattr(EstimatedCountPaginator, "count_limit_ms", 50)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE orders_order")
    slow = (
        Order.objects.filter(campaign=scene.campaign)
        .extra(where=["pg_sleep(0.02)::text = ''"])
        .order_by("-id")
    )
    plan = json.loads(slow.order_by().explain(format="json"))[0]["Plan"]["Plan Rows"]
    # when
    began = time.monotonic()
    count = EstimatedCountPaginator(slow, 100).count
    took = time.monotonic() - began
    # then: the planner's estimate, without waiting for the count
    assert count == plan != slow.count() == 10
    assert took < 0.15


@pytest.mark.django_db
def test_filtered_list_pages_still_show_their_rows(superuser: Client, scene: Scene) -> None:
    # given / when
    response = superuser.get("/admin/orders/order/", {"status__exact": "paid"})
    # then
    assert response.status_code == 200
    assert len(response.context["cl"].result_list) == 3
    assert response.context["cl"].result_count == 3


@pytest.mark.django_db(transaction=True)
def test_seed_volume_fills_a_consistent_campaign_the_pages_read_right(
    django_user_model: type,
) -> None:
    # given
    schema = _indexes_and_constraints()
    # when
    out = io.StringIO()
    seed_volume.seed(orders=3000, coupons=3300, chunk=1000, out=out)
    # then: progress was shown over the load, the index builds and the VACUUM
    for phase in ("coupons", "orders", "indexes", "vacuum"):
        assert re.search(rf"{phase} +\[#+\] 100\.0%", out.getvalue()), phase
    # and the indexes and constraints dropped for the load are back as migrate made them
    assert _indexes_and_constraints() == schema
    # and every reference holds, with or without a database key (the load checks none)
    assert _dangling_references() == {}
    # and every table the seed fills has statistics, as autovacuum would have left it
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT relname FROM pg_stat_user_tables WHERE relname = ANY(%s) "
            "AND (last_vacuum IS NULL OR last_analyze IS NULL)",
            [seed_volume._TABLES],
        )
        assert cursor.fetchall() == []
    # and the invariants hold
    assert (Order.objects.count(), Coupon.objects.count()) == (3000, 3300)
    main = Campaign.objects.get(slug="volume-main")
    paid = Order.objects.filter(campaign=main, status="paid")
    assert (
        campaign_coupons_issued(campaign_id=main.pk) == Coupon.objects.filter(campaign=main).count()
    )
    assert main.budget_spent == sum(paid.values_list("discount", flat=True))
    assert main.budget_held == sum(
        Order.objects.filter(campaign=main, status="reserved").values_list("discount", flat=True)
    )
    assert (
        Coupon.objects.filter(campaign=main, status="redeemed").count()
        == Order.objects.filter(campaign=main, status__in=["paid", "refunded"]).count()
    )
    assert Reservation.objects.filter(order__status="paid", outcome="sold").count() == (
        Order.objects.filter(status="paid").count()
    )
    assert (
        OrderEvent.objects.filter(target="paid").count()
        == Order.objects.filter(status__in=["paid", "refunded"]).count()
    )
    assert Payment.objects.filter(status="parked").exists()
    assert all(p.stock <= p.stock_total for p in Product.objects.all())
    # and the campaign page shows what the database holds
    ensure_roles()
    shown = figures(
        login(django_user_model, "vera", group="campaign viewer").get(
            f"/admin/coupons/campaign/{main.pk}/dashboard/"
        )
    )
    for status in Order.Status.values:
        assert (
            number(shown[f"orders-{status}"])
            == Order.objects.filter(campaign=main, status=status).count()
        )
    assert (
        number(shown["coupons-held"])
        == Coupon.objects.filter(campaign=main, status="reserved").count()
    )
    assert number(shown["whole-accepted"]) == Order.objects.filter(campaign=main).count()


class _StopAt(io.StringIO):
    """A terminal whose user presses Ctrl-C once `phase`'s bar shows some of it done."""

    def __init__(self, phase: str) -> None:
        super().__init__()
        self.progress, self.pressed = re.compile(rf"{phase} +\[[#.]+\] +[\d.]+% +[1-9]"), False

    def write(self, text: str) -> int:
        if not self.pressed and self.progress.search(text):
            self.pressed = True
            raise KeyboardInterrupt
        return super().write(text)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("phase", ["orders", "indexes"])
def test_a_seed_stopped_before_its_commit_leaves_no_row_and_says_so(phase: str) -> None:
    # given
    schema = _indexes_and_constraints()
    out = _StopAt(phase)
    # when
    with pytest.raises(KeyboardInterrupt):
        seed_volume.seed(orders=3000, coupons=3300, chunk=1000, out=out)
    # then: the load is one transaction, so nothing of it stayed, and the output says so
    assert "Stopped before the commit" in out.getvalue()
    assert (Order.objects.count(), Coupon.objects.count()) == (0, 0)
    assert _indexes_and_constraints() == schema


def _loaded_models() -> list[type[models.Model]]:
    return [m for m in apps.get_models() if m._meta.db_table in seed_volume._LOADED]


def _indexes_and_constraints() -> dict[str, str]:
    """Every index and constraint of the tables the seed fills, as the catalog spells it."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexrelid::regclass::text, pg_get_indexdef(indexrelid) FROM pg_index "
            "WHERE indrelid = ANY(%(tables)s::regclass[]) "
            "UNION ALL SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = ANY(%(tables)s::regclass[])",
            {"tables": seed_volume._LOADED},
        )
        return dict(cursor.fetchall())


def _dangling_references() -> dict[str, int]:
    """For each foreign key field of the seeded tables (database key or not), the rows that
    name a row that does not exist."""
    found = {}
    with connection.cursor() as cursor:
        for model in _loaded_models():
            for field in model._meta.concrete_fields:
                if not isinstance(field, models.ForeignKey):
                    continue
                parent = field.related_model._meta
                cursor.execute(
                    f"SELECT count(*) FROM {model._meta.db_table} c "  # noqa: S608
                    f"WHERE c.{field.column} IS NOT NULL AND NOT EXISTS (SELECT 1 FROM "
                    f"{parent.db_table} p WHERE p.{field.target_field.column} = c.{field.column})"
                )
                if dangling := cursor.fetchone()[0]:
                    found[f"{model._meta.db_table}.{field.column}"] = dangling
    return found
