"""Per-process copies and the one version that drops them (infra/memo.py): a refused write
of the version is tried again until it lands, nothing cached is trusted while the version
cannot be read or went unread too long, and the process that makes a change drops its own
copies at once. Two processes: tests/infra/test_copies_processes.py."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis
from pytest_django.fixtures import Settings

from coupons import services as coupons_services
from coupons.selectors import campaign_terms
from infra import fast
from infra.memo import COPIES_VERSION, copies_version
from shop import services as shop_services
from shop.selectors import products_by_sku_cached
from tests import stack
from tests.factories.coupons import CampaignFactory
from tests.factories.shop import ApiClientFactory, ProductFactory
from tests.waiting import wait_until

# --- Publishing the version -------------------------------------------------------------------


@pytest.fixture
def refusing_writes(settings: Settings) -> Iterator[tuple[str, redis.Redis]]:
    """This process's Redis client logged in as a Redis user of this test's own that may read
    but not write. Yields the user's name and a client of the usual user. Redis refuses for real
    (NOPERM), and records each refusal in its ACL LOG."""
    admin = redis.Redis.from_url(settings.REDIS_URL, decode_responses=True)
    name, password = f"copies-test-{secrets.token_hex(4)}", secrets.token_hex(16)
    rules = ("on", f">{password}", "~*", "&*", "+@all", "-@write")
    admin.execute_command("ACL", "SETUSER", name, *rules)
    url = urlsplit(settings.REDIS_URL)
    netloc = f"{name}:{password}@{url.hostname}:{url.port or 6379}"
    settings.REDIS_URL = urlunsplit(url._replace(netloc=netloc))
    fast.client.cache_clear()
    try:
        yield name, admin
    finally:
        fast.client.cache_clear()
        admin.execute_command("ACL", "DELUSER", name)
        admin.close()


def allow_writes_once_refused(
    admin: redis.Redis, name: str, refusals: list[dict[str, object]]
) -> None:
    """Wait until Redis has refused `name` a write (its ACL LOG says so), then allow it."""

    def refused() -> bool:
        refusals.extend(e for e in admin.acl_log(count=128) if e.get("username") == name)
        return bool(refusals)

    try:
        wait_until(refused, timeout=30, interval=0.005, what="Redis to refuse the write")
    finally:
        admin.execute_command("ACL", "SETUSER", name, "+@write")


@pytest.mark.django_db
def test_a_refused_version_write_is_tried_again_until_it_lands(
    refusing_writes: tuple[str, redis.Redis],
    django_capture_on_commit_callbacks: Callable[..., Any],
) -> None:
    # given: the version every process reads, and a key to revoke
    name, admin = refusing_writes
    before = admin.get(COPIES_VERSION)
    key = shop_services.api_key_issue(client_id=ApiClientFactory().pk).key
    refusals: list[dict[str, object]] = []
    letting = threading.Thread(target=allow_writes_once_refused, args=(admin, name, refusals))
    letting.start()
    # when: the key is revoked while Redis refuses this process's write of the version, and
    # lets it write once it has refused it
    with django_capture_on_commit_callbacks(execute=True):
        shop_services.api_key_revoke(key_id=key.pk)
    letting.join()
    # then: refused first, and the version was written all the same
    assert refusals, "Redis never refused the write"
    assert admin.get(COPIES_VERSION) not in (None, before)


# --- Reading the version ----------------------------------------------------------------------


@pytest.mark.django_db
def test_nothing_cached_is_trusted_while_the_version_cannot_be_read(
    settings: Settings, django_assert_num_queries: Callable[..., Any]
) -> None:
    # given: copies kept a minute, the version read once a minute, and a Redis nobody answers
    settings.INTAKE_CACHE_SECONDS = 60
    settings.CACHE_VERSION_CHECK_SECONDS = 60
    tea = ProductFactory(price=1800)
    settings.REDIS_URL = f"redis://127.0.0.1:{stack.free_port()}/0"
    fast.client.cache_clear()
    copies_version.forget()
    try:
        # when / then: every lookup goes to the database
        for _ in range(2):
            with django_assert_num_queries(1):
                assert products_by_sku_cached([tea.sku])[tea.sku].price == 1800
    finally:
        fast.client.cache_clear()


@pytest.mark.django_db
def test_a_process_that_did_not_read_the_version_for_long_trusts_nothing_it_held(
    settings: Settings, django_assert_num_queries: Callable[..., Any]
) -> None:
    # given: a product this process holds, the version re-read on every lookup
    settings.INTAKE_CACHE_SECONDS = 60
    settings.CACHE_VERSION_CHECK_SECONDS = 0
    settings.CACHE_VERSION_PUBLISH_SECONDS = 1.0
    tea = ProductFactory(price=1800)
    products_by_sku_cached([tea.sku])
    with django_assert_num_queries(0):
        products_by_sku_cached([tea.sku])
    # when: longer than a change tries to publish its version goes by without a read (elapsed
    # time is what this test is about: nothing else tells the process it may have missed one)
    time.sleep(1.1)
    # then: a change may have gone by unseen, so the copy is read again
    with django_assert_num_queries(1):
        products_by_sku_cached([tea.sku])


@pytest.mark.django_db
def test_the_process_that_makes_a_change_drops_its_copies_at_once(
    settings: Settings, django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    # given: a campaign this process holds, its copies kept and the version read once a minute
    settings.INTAKE_CACHE_SECONDS = 60
    settings.CACHE_VERSION_CHECK_SECONDS = 60
    campaign = CampaignFactory()
    assert campaign_terms(campaign_id=campaign.pk).per_customer_limit == 1
    # when: staff change a limit
    with django_capture_on_commit_callbacks(execute=True):
        coupons_services.campaign_update(
            campaign_id=campaign.pk, changes={"per_customer_limit": 3}, actor="staff:test"
        )
    # then: this process's next order is judged by the new terms
    assert campaign_terms(campaign_id=campaign.pk).per_customer_limit == 3
