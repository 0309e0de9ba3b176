"""`manage.py campaign_load FILE`: a campaign written down is loaded through the services,
checked field by field, idempotent, all or nothing, and recorded in the audit log."""

from __future__ import annotations

import copy
import io
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.core.management import CommandError, call_command
from django.utils import timezone

from coupons import services as coupons_services
from coupons.models import Campaign
from coupons.selectors import campaign_coupons_issued
from shop import services as shop_services
from shop.models import AuditEntry, Product, Store
from tests.factories.shop import ApiClientFactory

pytestmark = pytest.mark.django_db

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "campaign.example.yaml"


def document() -> dict[str, Any]:
    """A campaign open now, so that coupons can be claimed from it in a test."""
    now = timezone.now().replace(microsecond=0)
    return {
        "campaign": {
            "slug": "summer",
            "name": "Summer free order",
            "starts_at": (now - timedelta(hours=1)).isoformat(),
            "ends_at": (now + timedelta(days=1)).isoformat(),
            "coupon_valid_until": (now + timedelta(days=2)).isoformat(),
            "max_discount": 2500,
            "coupons_total": 10,
            "budget_total": 100_000,
            "per_customer_limit": 1,
            "backlog_ceiling": 5000,
        },
        "stores": [{"slug": "tea-house", "name": "Tea House"}],
        "products": [
            {"sku": "TM-1", "name": "Milk tea", "store": "tea-house", "price": 1800, "stock": 100}
        ],
    }


def write(tmp_path: Path, doc: object, name: str = "campaign.yaml") -> Path:
    path = tmp_path / name
    text = json.dumps(doc) if name.endswith(".json") else yaml.safe_dump(doc, sort_keys=False)
    path.write_text(text)
    return path


def load(path: Path, *options: str) -> str:
    out = io.StringIO()
    call_command("campaign_load", str(path), *options, stdout=out)
    return out.getvalue()


def refused(path: Path) -> str:
    with pytest.raises(CommandError) as caught:
        load(path)
    return str(caught.value)


def state() -> tuple[object, ...]:
    return (
        list(Campaign.objects.order_by("pk").values()),
        list(Store.objects.order_by("pk").values()),
        list(Product.objects.order_by("pk").values()),
        AuditEntry.objects.count(),
    )


def test_the_example_file_loads() -> None:
    # given / when
    out = load(EXAMPLE)
    # then
    campaign = Campaign.objects.get(slug="summer-free-order")
    assert (campaign.max_discount, campaign.coupons_total, campaign.budget_total) == (
        2500,
        1_000_000,
        2_000_000_000,
    )
    assert (campaign.per_customer_limit, campaign.backlog_ceiling) == (1, 200_000)
    assert campaign.starts_at.isoformat() == "2026-12-01T02:00:00+00:00"
    tea = Product.objects.get(sku="TM-MILKTEA-L")
    assert (tea.store.slug, tea.price, tea.stock, tea.stock_total) == (
        "tea-house",
        1800,
        500_000,
        500_000,
    )
    assert Product.objects.count() == 3
    assert "campaign summer-free-order: created" in out


def test_each_creation_is_in_the_audit_log() -> None:
    # given / when
    load(EXAMPLE)
    # then
    actions = sorted(AuditEntry.objects.values_list("action", "actor", "target_repr"))
    assert ("campaign.create", "campaign_load", "summer-free-order") in actions
    assert ("product.create", "campaign_load", "TM-MILKTEA-L") in actions
    assert ("store.create", "campaign_load", "tea-house") in actions
    assert len(actions) == 1 + 2 + 3


def test_loading_the_same_file_twice_changes_nothing(tmp_path: Path) -> None:
    # given
    path = write(tmp_path, document())
    load(path)
    before = state()
    # when
    out = load(path)
    # then
    assert state() == before
    assert "nothing changed" in out


def test_a_json_file_loads_the_same(tmp_path: Path) -> None:
    # given / when
    load(write(tmp_path, document(), "campaign.json"))
    # then
    assert Campaign.objects.get(slug="summer").coupons_total == 10


def test_a_changed_file_updates_what_may_change(tmp_path: Path) -> None:
    # given: a loaded campaign with coupons issued and units sold
    doc = document()
    load(write(tmp_path, doc))
    campaign = Campaign.objects.get(slug="summer")
    tea = Product.objects.get(sku="TM-1")
    claim(campaign, "c-1")
    shop_services.stock_take(quantities={tea.pk: 30})
    # when
    changed = copy.deepcopy(doc)
    changed["campaign"] |= {
        "name": "Summer free order, extended",
        "coupons_total": 20,
        "budget_total": 150_000,
        "per_customer_limit": 2,
        "backlog_ceiling": None,
        "ends_at": (timezone.now() + timedelta(days=3)).replace(microsecond=0).isoformat(),
    }
    changed["products"][0] |= {"price": 1900, "stock": 150, "name": "Milk tea, large"}
    out = load(write(tmp_path, changed))
    # then
    campaign.refresh_from_db()
    tea.refresh_from_db()
    assert campaign.name == "Summer free order, extended"
    issued = campaign_coupons_issued(campaign_id=campaign.pk)
    assert (campaign.coupons_total, issued) == (20, 1)
    assert (campaign.budget_total, campaign.per_customer_limit) == (150_000, 2)
    assert campaign.backlog_ceiling is None
    assert (tea.price, tea.name, tea.stock_total, tea.stock) == (1900, "Milk tea, large", 150, 120)
    assert "campaign summer: coupons_total 10 -> 20" in out
    assert "product TM-1: stock_total 100 -> 150" in out
    assert AuditEntry.objects.filter(action="campaign.totals").count() == 1
    assert AuditEntry.objects.filter(action="campaign.load").count() == 1


def test_fewer_units_are_taken_off_sale_but_never_those_sold(tmp_path: Path) -> None:
    # given: 100 units, 30 sold
    doc = document()
    load(write(tmp_path, doc))
    tea = Product.objects.get(sku="TM-1")
    shop_services.stock_take(quantities={tea.pk: 30})
    # when: 80 (20 unsold units off sale), then 20 (fewer than sold)
    doc["products"][0]["stock"] = 80
    load(write(tmp_path, doc))
    tea.refresh_from_db()
    doc["products"][0]["stock"] = 20
    message = refused(write(tmp_path, doc))
    # then
    assert (tea.stock_total, tea.stock) == (80, 50)
    assert "products[0].stock: 30 units are held or sold; it cannot be 20." in message
    tea.refresh_from_db()
    assert (tea.stock_total, tea.stock) == (80, 50)


def claim(campaign: Campaign, customer: str) -> None:
    coupons_services.coupon_claim(
        client_id=ApiClientFactory().pk,
        slug=campaign.slug,
        customer_id=customer,
        idempotency_key=f"k-{customer}",
    )


def test_fewer_coupons_than_issued_are_refused_and_nothing_changes(tmp_path: Path) -> None:
    # given: 3 coupons issued
    doc = document()
    load(write(tmp_path, doc))
    campaign = Campaign.objects.get(slug="summer")
    for customer in ("c-1", "c-2", "c-3"):
        claim(campaign, customer)
    before = state()
    # when: 2 coupons, and a new name and price in the same file
    doc["campaign"] |= {"coupons_total": 2, "name": "Renamed"}
    doc["products"][0]["price"] = 1
    message = refused(write(tmp_path, doc))
    # then: refused by field, and all or nothing
    assert "campaign.coupons_total: 3 coupons are already issued; the total cannot be 2." in (
        message
    )
    assert "nothing changed" in message
    assert state() == before


def test_less_budget_than_held_and_spent_is_refused(tmp_path: Path) -> None:
    # given: 60,000 fen held by orders in flight
    doc = document()
    load(write(tmp_path, doc))
    campaign = Campaign.objects.get(slug="summer")
    coupons_services.budget_hold(campaign_id=campaign.pk, amount=60_000)
    # when
    doc["campaign"]["budget_total"] = 50_000
    message = refused(write(tmp_path, doc))
    # then
    assert "campaign.budget_total: 60000 fen are already held or spent" in message
    campaign.refresh_from_db()
    assert campaign.budget_total == 100_000


def test_the_maximum_discount_changes_only_until_a_coupon_is_issued(tmp_path: Path) -> None:
    # given
    doc = document()
    load(write(tmp_path, doc))
    # when: no coupon yet
    doc["campaign"]["max_discount"] = 3000
    load(write(tmp_path, doc))
    # then
    campaign = Campaign.objects.get(slug="summer")
    assert campaign.max_discount == 3000
    # when: a coupon was issued
    claim(campaign, "c-1")
    doc["campaign"]["max_discount"] = 2000
    message = refused(write(tmp_path, doc))
    # then
    assert "campaign.max_discount: Coupons were issued with a maximum discount of 3000" in message


def test_a_dry_run_keeps_nothing(tmp_path: Path) -> None:
    # given / when
    out = load(write(tmp_path, document()), "--dry-run")
    # then
    assert "dry run" in out
    assert "campaign summer: created" in out
    assert not Campaign.objects.exists()
    assert not Product.objects.exists()
    assert not AuditEntry.objects.exists()


def _set(doc: dict[str, Any], path: str, value: object) -> None:
    *parents, leaf = path.split(".")
    node: Any = doc
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    if value is _DELETE:
        del node[leaf]
    else:
        node[leaf] = value


_DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        ("campaign.coupon_total", 10, "campaign.coupon_total: Unknown field."),
        ("campaign.max_discount", "25.00", "campaign.max_discount: Must be a JSON integer."),
        ("campaign.max_discount", 0, "campaign.max_discount: Ensure this value is greater"),
        ("campaign.budget_total", -1, "campaign.budget_total: Ensure this value is greater"),
        ("campaign.per_customer_limit", 0, "campaign.per_customer_limit: Ensure this value"),
        ("campaign.starts_at", "2026-12-01T10:00:00", "campaign.starts_at: Give the time zone"),
        ("campaign.ends_at", "2020-01-01T00:00:00+00:00", "campaign.ends_at: Must be after"),
        ("campaign.slug", "not a slug", "campaign.slug: Enter a valid"),
        ("campaign.name", _DELETE, "campaign.name: This field is required."),
        ("products.0.price", 18.5, "products[0].price: Must be a JSON integer."),
        ("products.0.stock", -5, "products[0].stock: Ensure this value is greater"),
        ("products.0.store", "nowhere", "products[0].store: No store 'nowhere'."),
    ],
)
def test_a_problem_is_reported_by_its_field_and_nothing_is_loaded(
    tmp_path: Path, path: str, value: object, expected: str
) -> None:
    # given
    doc = document()
    _set(doc, path, value)
    # when
    message = refused(write(tmp_path, doc))
    # then
    assert expected in message
    assert not Campaign.objects.exists()
    assert not Product.objects.exists()


def test_a_file_that_is_not_yaml_says_so(tmp_path: Path) -> None:
    # given
    path = tmp_path / "broken.yaml"
    path.write_text("campaign: [unclosed\n")
    # when / then
    assert "not valid YAML" in refused(path)


def test_a_missing_file_says_so(tmp_path: Path) -> None:
    assert "cannot be read" in refused(tmp_path / "nope.yaml")
