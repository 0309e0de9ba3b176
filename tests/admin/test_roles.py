"""Roles: the migration makes "campaign viewer" (read only) and "campaign operator"
(controls); every page renders for each role; viewers see no control and are refused every
one; only superusers reach API clients and keys."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from tests.admin.conftest import OPERATOR, VIEWER, Scene

if TYPE_CHECKING:
    from django.test import Client

pytestmark = pytest.mark.django_db


def test_the_migration_makes_both_groups() -> None:
    # given: the database without the roles migration
    executor = MigrationExecutor(connection)
    executor.migrate([("shop", "0004_admin_indexes")])
    assert not Group.objects.filter(name__in=[VIEWER, OPERATOR]).exists()
    # when
    executor.loader.build_graph()
    executor.migrate([("shop", "0005_staff_roles")])
    # then
    viewer = set(Group.objects.get(name=VIEWER).permissions.values_list("codename", flat=True))
    operator = set(Group.objects.get(name=OPERATOR).permissions.values_list("codename", flat=True))
    assert {"view_campaign", "view_order", "view_payment", "view_auditentry"} <= viewer
    assert not any(p.startswith(("add_", "change_", "delete_")) for p in viewer)
    assert operator - viewer == {
        "change_campaign",
        "change_order",
        "add_ratelimit",
        "change_ratelimit",
    }
    assert not {p for p in operator if "apikey" in p or "apiclient" in p}


def pages(scene: Scene) -> list[str]:
    campaign, order = scene.campaign, scene.orders["c1"]
    return [
        "/admin/",
        f"/admin/coupons/campaign/{campaign.pk}/dashboard/",
        f"/admin/coupons/campaign/{campaign.pk}/dashboard/?fragment=1",
        "/admin/orders/order/backlog/",
        "/admin/orders/order/backlog/?fragment=1",
        "/admin/coupons/campaign/",
        f"/admin/coupons/campaign/{campaign.pk}/change/",
        "/admin/coupons/coupon/",
        "/admin/orders/order/",
        f"/admin/orders/order/{order.pk}/change/",
        "/admin/orders/payment/",
        "/admin/orders/callbackdelivery/",
        "/admin/orders/orderevent/",
        "/admin/orders/reservation/",
        "/admin/shop/product/",
        "/admin/shop/ratelimit/",
        "/admin/shop/ratelimitchange/",
        "/admin/shop/auditentry/",
    ]


def controls(scene: Scene) -> list[str]:
    campaign = scene.campaign
    return [
        f"/admin/coupons/campaign/{campaign.pk}/status/pause/",
        f"/admin/coupons/campaign/{campaign.pk}/limits/",
        "/admin/orders/order/backlog/replay/payments/",
        "/admin/orders/order/backlog/replay/callbacks/",
        "/admin/orders/order/backlog/replay/orders/",
        f"/admin/orders/order/{scene.orders['c5'].pk}/cancel/",
        f"/admin/orders/order/{scene.orders['c1'].pk}/refund/",
    ]


@pytest.mark.parametrize("role", ["viewer", "operator", "superuser"])
def test_every_page_renders_for_every_role(
    role: str, request: pytest.FixtureRequest, scene: Scene
) -> None:
    # given
    client: Client = request.getfixturevalue(role)
    # when
    answers = {url: client.get(url).status_code for url in pages(scene)}
    # then
    assert answers == dict.fromkeys(pages(scene), 200)


def test_viewers_see_no_control_and_are_refused_every_one(viewer: Client, scene: Scene) -> None:
    # given
    campaign_page = viewer.get(f"/admin/coupons/campaign/{scene.campaign.pk}/dashboard/")
    order_page = viewer.get(f"/admin/orders/order/{scene.orders['c5'].pk}/change/")
    # when
    asked = [viewer.get(url).status_code for url in controls(scene)]
    done = [viewer.post(url, {"confirm": "yes"}).status_code for url in controls(scene)]
    # then
    assert asked == [403] * len(asked)
    assert done == [403] * len(done)
    for html in [campaign_page.content.decode(), order_page.content.decode()]:
        assert 'id="control-' not in html


def test_operators_are_offered_every_control(operator: Client, scene: Scene) -> None:
    # given / when
    campaign_page = operator.get(f"/admin/coupons/campaign/{scene.campaign.pk}/dashboard/")
    held = operator.get(f"/admin/orders/order/{scene.orders['c5'].pk}/change/")
    paid = operator.get(f"/admin/orders/order/{scene.orders['c1'].pk}/change/")
    confirmations = [operator.get(url).status_code for url in controls(scene)]
    # then
    assert 'id="control-pause"' in campaign_page.content.decode()
    assert 'id="control-limits"' in campaign_page.content.decode()
    assert 'id="control-cancel"' in held.content.decode()
    assert 'id="control-refund"' in paid.content.decode()
    assert confirmations == [200] * len(confirmations)


def test_staff_without_a_role_see_nothing(nobody: Client, scene: Scene) -> None:
    answers = [
        nobody.get(url).status_code
        for url in [
            f"/admin/coupons/campaign/{scene.campaign.pk}/dashboard/",
            "/admin/orders/order/backlog/",
            "/admin/orders/order/",
            "/admin/shop/auditentry/",
        ]
    ]
    assert answers == [403] * 4


@pytest.mark.parametrize("role", ["viewer", "operator"])
def test_only_superusers_manage_api_keys(role: str, request: pytest.FixtureRequest) -> None:
    # given
    client: Client = request.getfixturevalue(role)
    # when
    answers = [
        client.get(url).status_code
        for url in ["/admin/shop/apiclient/", "/admin/shop/apikey/", "/admin/shop/apiclient/add/"]
    ]
    index = client.get("/admin/").content.decode()
    # then
    assert answers == [403, 403, 403]
    assert "/admin/shop/apikey/" not in index
    assert request.getfixturevalue("superuser").get("/admin/shop/apikey/").status_code == 200
