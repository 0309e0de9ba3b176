"""Authentication at the edge: failed attempts are limited per source address in Redis (every
process shares the count), a repeated bad key costs no database lookup, and a revoked key
stops working in every process within a second."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from django.test import override_settings
from django.utils import timezone
from rest_framework.test import APIClient

from infra import fast
from shop import services as shop_services
from shop.models import ApiKey
from shop.selectors import AUTH_BLOCK_PREFIX
from tests import stack
from tests.factories.shop import ApiClientFactory
from tests.waiting import wait_until

CAMPAIGNS = "/api/v1/campaigns/"


def client_from(address: str, key: str | None = None) -> APIClient:
    api = APIClient(REMOTE_ADDR=address)
    if key is not None:
        api.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return api


def made_up_key() -> str:
    return f"cop_{secrets.token_urlsafe(32)}"


def get_with(api: APIClient, key: str) -> object:
    return api.get(CAMPAIGNS, HTTP_AUTHORIZATION=f"Bearer {key}")


@pytest.mark.django_db
@override_settings(AUTH_FAILURE_BURST=5, AUTH_FAILURE_RPS=0.2)
def test_a_key_spray_from_one_address_is_refused_while_a_good_client_is_served() -> None:
    # given: a good chatbot on one address and a sprayer on another
    good_key = shop_services.api_key_issue(client_id=ApiClientFactory().pk).raw
    good = client_from("10.0.0.7", good_key)
    sprayer = client_from("10.0.0.66")
    sprayed, served = [], []
    # when: 30 made-up keys, each new, interleaved with the good client's requests
    for _ in range(30):
        sprayed.append(get_with(sprayer, made_up_key()))
        served.append(good.get(CAMPAIGNS))
    # then: the burst is answered 401, then 429 with Retry-After; the good client never waits
    assert [r.status_code for r in sprayed[:5]] == [401] * 5
    assert {r.status_code for r in sprayed[5:]} == {429}
    refused = sprayed[-1]
    assert refused.json()["error"] == "overloaded"
    assert refused.json()["retry_after"] >= 1
    assert int(refused["Retry-After"]) == refused.json()["retry_after"]
    assert {r.status_code for r in served} == {200}


@pytest.mark.django_db
@override_settings(AUTH_FAILURE_BURST=3, AUTH_FAILURE_RPS=0.2)
def test_a_blocked_address_costs_no_database_lookup_even_with_new_keys(
    django_assert_num_queries: object,
) -> None:
    # given: an address past its burst
    sprayer = client_from("10.0.0.66")
    for _ in range(4):
        get_with(sprayer, made_up_key())
    # when: yet another made-up key
    with django_assert_num_queries(0):  # type: ignore[operator]
        response = get_with(sprayer, made_up_key())
    # then
    assert response.status_code == 429


@pytest.mark.django_db
def test_a_repeated_bad_key_costs_no_database_lookup(django_assert_num_queries: object) -> None:
    # given: a bad key tried once (one lookup)
    api, key = client_from("10.0.0.66"), made_up_key()
    with django_assert_num_queries(1):  # type: ignore[operator]
        first = get_with(api, key)
    # when: the same key again
    with django_assert_num_queries(0):  # type: ignore[operator]
        again = get_with(api, key)
    # then
    assert first.status_code == again.status_code == 401
    assert again.json()["error"] == "unauthorized"


@pytest.mark.django_db
@override_settings(AUTH_FAILURE_BURST=2, AUTH_FAILURE_RPS=0.2)
def test_the_failure_count_lives_in_redis_not_in_the_process() -> None:
    # given: an address past its burst
    sprayer = client_from("10.0.0.66")
    for _ in range(3):
        get_with(sprayer, made_up_key())
    # then: the count and the block are Redis keys every process reads
    assert fast.client().exists("cop:bucket:authfail:10.0.0.66")
    assert fast.client().pttl(f"{AUTH_BLOCK_PREFIX}10.0.0.66") > 0
    # and another address is not affected
    assert get_with(client_from("10.0.0.67"), made_up_key()).status_code == 401


@pytest.mark.django_db
@override_settings(AUTH_FAILURE_BURST=2, AUTH_FAILURE_RPS=5.0)
def test_a_blocked_address_gets_attempts_back_after_retry_after() -> None:
    # given: an address past its burst
    sprayer = client_from("10.0.0.66")
    for _ in range(3):
        get_with(sprayer, made_up_key())
    assert get_with(sprayer, made_up_key()).status_code == 429
    # when: its block runs out, which is when the bucket holds a token again (5 a second)
    blocked = f"{AUTH_BLOCK_PREFIX}10.0.0.66"
    wait_until(lambda: not fast.client().exists(blocked), timeout=5, what="the block to end")
    # then
    assert get_with(sprayer, made_up_key()).status_code == 401


@pytest.mark.django_db
@override_settings(AUTH_FAILURE_BURST=2, AUTH_FAILURE_RPS=0.2, API_KEY_CACHE_SECONDS=30)
def test_a_good_key_already_known_is_served_from_a_blocked_address() -> None:
    # given: a good client behind the same address (NAT) as a sprayer, its key in the cache
    good_key = shop_services.api_key_issue(client_id=ApiClientFactory().pk).raw
    shared = "10.0.0.99"
    assert client_from(shared, good_key).get(CAMPAIGNS).status_code == 200
    # when: the address is blocked
    for _ in range(3):
        get_with(client_from(shared), made_up_key())
    assert get_with(client_from(shared), made_up_key()).status_code == 429
    # then
    assert client_from(shared, good_key).get(CAMPAIGNS).status_code == 200


@pytest.mark.django_db
@override_settings(
    AUTH_FAILURE_BURST=2, AUTH_FAILURE_RPS=0.2, CLIENT_ADDRESS_HEADER="HTTP_X_FORWARDED_FOR"
)
def test_behind_a_proxy_the_address_it_appended_is_counted() -> None:
    # given: a sprayer behind the proxy forging its own X-Forwarded-For entries
    proxy = client_from("10.0.0.1")
    for n in range(3):
        proxy.get(
            CAMPAIGNS,
            HTTP_AUTHORIZATION=f"Bearer {made_up_key()}",
            HTTP_X_FORWARDED_FOR=f"1.1.1.{n}, 203.0.113.5",
        )
    # when: another client behind the same proxy
    other = proxy.get(
        CAMPAIGNS,
        HTTP_AUTHORIZATION=f"Bearer {made_up_key()}",
        HTTP_X_FORWARDED_FOR="203.0.113.6",
    )
    # then: the sprayer's address is blocked, the proxy's other clients are not
    assert fast.client().pttl(f"{AUTH_BLOCK_PREFIX}203.0.113.5") > 0
    assert other.status_code == 401


# --- Two processes: the test's and a real gunicorn --------------------------------------------


@pytest.fixture
def gunicorn(worker_env: dict[str, str], log_dir: Path) -> Iterator[str]:
    """A real gunicorn (one sync worker) on this test's database and Redis, with the
    production key cache of 30 s, so it holds keys the way a deployed web process does."""
    env = {**worker_env, "API_KEY_CACHE_SECONDS": "30"}
    base, process = stack.start_web(log_dir / "gunicorn-keys.log", env=env)
    yield base
    stack.stop(process)


def status_at(base: str, key: str) -> int:
    return httpx.get(
        f"{base}{CAMPAIGNS}", headers={"Authorization": f"Bearer {key}"}, timeout=5
    ).status_code


@pytest.mark.django_db(transaction=True)
def test_a_revoked_key_stops_working_in_another_process_within_a_second(gunicorn: str) -> None:
    # given: two keys the other process has seen and cached
    client = ApiClientFactory()
    first = shop_services.api_key_issue(client_id=client.pk)
    second = shop_services.api_key_issue(client_id=client.pk)
    assert status_at(gunicorn, first.raw) == status_at(gunicorn, second.raw) == 200
    # and the other process really trusts its cache: a revocation written past the service
    # (no version change) is not seen there
    ApiKey.objects.filter(pk=second.key.pk).update(revoked_at=timezone.now())
    assert status_at(gunicorn, second.raw) == 200
    # when: a key is revoked through the service, in this process
    shop_services.api_key_revoke(key_id=first.key.pk)
    # then: the other process refuses it within a second (and drops the other stale entry)
    wait_until(
        lambda: status_at(gunicorn, first.raw) == 401,
        timeout=1.0,
        what="the other process to refuse the revoked key",
    )
    assert status_at(gunicorn, second.raw) == 401


@pytest.mark.django_db(transaction=True)
@override_settings(AUTH_FAILURE_BURST=3, AUTH_FAILURE_RPS=0.2)
def test_failures_counted_in_one_process_are_refused_by_another(gunicorn: str) -> None:
    # given: this process saw an address spray past its burst (the other process uses the
    # default limits, so only the shared count in Redis can make it refuse)
    sprayer = client_from("127.0.0.1")
    for _ in range(4):
        get_with(sprayer, made_up_key())
    # when: the same address tries a new made-up key at the other process
    status = status_at(gunicorn, made_up_key())
    # then
    assert status == 429
