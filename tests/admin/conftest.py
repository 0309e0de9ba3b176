"""The staff admin's tests: a logged-in client per role, and a campaign whose figures are known
because every row was made by the pipeline's own services."""

from __future__ import annotations

import html
import importlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest
from django.apps import apps as django_apps
from django.contrib.auth.models import Group
from django.test import Client

from coupons.models import Campaign
from orders import services
from orders.dashboard import common as dashboard_common
from orders.gateway.client import ChargeOutcome
from orders.models import Order
from tests.factories.coupons import CampaignFactory
from tests.factories.orders import claim, place
from tests.factories.shop import ProductFactory

if TYPE_CHECKING:
    from django.http import HttpResponse

    from shop.models import ApiClient, Product

ROLES_MIGRATION = importlib.import_module("shop.migrations.0005_staff_roles")
VIEWER, OPERATOR = ROLES_MIGRATION.VIEWER, ROLES_MIGRATION.OPERATOR


@pytest.fixture(autouse=True)
def _no_background_threads() -> Iterator[None]:
    """A background thread has its own connection, which cannot see a test's rows."""
    dashboard_common.BACKGROUND = False
    yield
    dashboard_common.BACKGROUND = True


def ensure_roles() -> None:
    """The two groups, made by the migration's own function: a transactional test elsewhere
    in the session may have flushed the rows the migration made."""
    ROLES_MIGRATION.create_roles(django_apps, None)


def login(
    django_user_model: type, username: str, *, group: str = "", superuser: bool = False
) -> Client:
    user = django_user_model.objects.create_user(
        username=username, password="x", is_staff=True, is_superuser=superuser
    )
    if group:
        user.groups.add(Group.objects.get(name=group))
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def roles(db: None) -> None:
    ensure_roles()


@pytest.fixture
def viewer(roles: None, django_user_model: type) -> Client:
    return login(django_user_model, "vera", group=VIEWER)


@pytest.fixture
def operator(roles: None, django_user_model: type) -> Client:
    return login(django_user_model, "otto", group=OPERATOR)


@pytest.fixture
def superuser(roles: None, django_user_model: type) -> Client:
    return login(django_user_model, "root", superuser=True)


@pytest.fixture
def nobody(roles: None, django_user_model: type) -> Client:
    """Staff status and no group: may log in, may see nothing."""
    return login(django_user_model, "nora")


def figures(response: HttpResponse) -> dict[str, str]:
    """Every `data-figure` on a page: its name → the text shown."""
    assert response.status_code == 200, response.status_code
    text = response.content.decode()
    return {
        name: html.unescape(value).strip()
        for name, value in re.findall(r'data-figure="([^"]+)">([^<]*)<', text)
    }


def number(text: str) -> int:
    return int(text.replace(",", ""))


# --- A campaign in every state ----------------------------------------------------------------


@dataclass
class Scene:
    campaign: Campaign
    tea: Product
    orders: dict[str, Order]


def charge(outcomes: dict[int, ChargeOutcome]) -> None:
    """Claim every due payment and record the outcome given for its order (by order id), as
    the settlement worker would after calling the gateway; orders not named stay claimed."""
    jobs = services.payments_claim_batch(limit=100).jobs
    services.payments_record(
        [(job, outcomes[job.order_id]) for job in jobs if job.order_id in outcomes]
    )


def build_scene(chatbot: ApiClient) -> Scene:
    """Ten customers of one campaign, with coupons (1800 a unit, 2500 off at most):
    3 paid, 1 declined, 2 holding (payment to retry), 1 cancelled, 1 rejected (a second order
    on a coupon in use), 2 waiting in line."""
    campaign = CampaignFactory(slug="spring", name="Spring", coupons_total=50, budget_total=100_000)
    tea = ProductFactory(sku="TEA-1", price=1800, stock=100)
    coupons = {f"c{n}": claim(chatbot, campaign, f"c{n}") for n in range(1, 11)}
    orders = {
        name: place(chatbot, name, [(tea, 2)], coupon=coupons[name])
        for name in ["c1", "c2", "c3", "c4", "c5", "c6", "c7"]
    }
    orders["c1-again"] = place(chatbot, "c1", [(tea, 1)], coupon=coupons["c1"])
    services.reservations_take_batch(campaign_id=campaign.pk, limit=100)
    services.order_cancel(
        client_id=chatbot.pk, public_id=str(orders["c7"].public_id), actor="chatbot"
    )
    ok, no = ChargeOutcome(kind="succeeded", charge_id="ch_1"), ChargeOutcome(kind="declined")
    later = ChargeOutcome(kind="retry", retry_after=60, error="429 over quota")
    charge(
        {
            orders["c1"].pk: ok,
            orders["c2"].pk: ok,
            orders["c3"].pk: ok,
            orders["c4"].pk: no,
            orders["c5"].pk: later,
            orders["c6"].pk: later,
        }
    )
    for name in ["c8", "c9"]:
        orders[name] = place(chatbot, name, [(tea, 2)], coupon=coupons[name])
    for order in orders.values():
        order.refresh_from_db()
    return Scene(campaign=campaign, tea=tea, orders=orders)


@pytest.fixture
def scene(chatbot: ApiClient) -> Scene:
    return build_scene(chatbot)
