"""The hand-written check of the common order body (orders.api.serializers.order_place_plain)
may only ever accept what OrderPlaceIn accepts, with the same result; anything else it leaves
to OrderPlaceIn, which explains the error."""

from __future__ import annotations

import json

import pytest
from django.core.exceptions import ValidationError as DjangoValidationError
from django.test import override_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.exceptions import ValidationError

import config.urls  # noqa: F401  (loads the API as Django does; infra.api before DRF's views)
from orders.api.serializers import OrderPlaceIn, callback_url_vetted, order_place_plain

texts = st.one_of(
    st.text(max_size=70),
    st.from_regex(r"[A-Za-z0-9_.:-]{1,64}", fullmatch=True),
    st.sampled_from(["", " c-1", "c-1 ", "TM-MILKTEA-L", "a" * 64, "a" * 65, "x\x00y", "茶"]),
)
scalars = st.one_of(
    texts, st.integers(-5, 120), st.booleans(), st.none(), st.floats(allow_nan=False)
)
items = st.lists(
    st.one_of(
        st.fixed_dictionaries({"sku": scalars, "quantity": scalars}),
        st.fixed_dictionaries({"sku": texts, "quantity": st.integers(0, 100)}),
        st.dictionaries(st.sampled_from(["sku", "quantity", "price"]), scalars),
        scalars,
    ),
    max_size=22,
)
callback_urls = st.sampled_from(
    [
        "",
        None,
        "https://example.com/cb",
        "http://example.com/cb",
        "http://127.0.0.1:9/cb",
        "https://10.0.0.7/hooks",
        "https://localhost/cb",
        "https://[::1]/cb",
        "https://bot.example.com:8443/hooks/orders?x=1",
        " https://example.com/cb",
        "https://example.com/cb ",
        "https://exa mple.com/cb",
        "https://例え.jp/cb",
        "https://example.com/" + "a" * 480,
        "https://example.com/" + "a" * 481,
        "ftp://x",
        "example.com/cb",
        "https://",
    ]
)
bodies = st.one_of(
    st.fixed_dictionaries(  # well-formed but for, perhaps, the callback URL
        {
            "customer_id": st.just("c-1"),
            "items": st.just([{"sku": "A", "quantity": 1}]),
            "callback_url": st.one_of(callback_urls, scalars),
        }
    ),
    st.fixed_dictionaries(
        {"customer_id": scalars, "items": st.one_of(items, scalars)},
        optional={
            "coupon_code": st.one_of(texts, st.none(), st.integers()),
            "callback_url": st.one_of(callback_urls, scalars),
            "extra": scalars,
        },
    ),
    scalars,
    st.lists(scalars, max_size=2),
)


@pytest.mark.parametrize("allow_http", [True, False])
@pytest.mark.parametrize("allow_private", [True, False])
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=bodies)
def test_the_plain_check_accepts_only_what_the_serializer_accepts(
    body: object, allow_http: bool, allow_private: bool
) -> None:
    with override_settings(CALLBACK_ALLOW_HTTP=allow_http, CALLBACK_ALLOW_PRIVATE=allow_private):
        plain = order_place_plain(body)
        serializer = OrderPlaceIn(data=body)
        valid = serializer.is_valid()
    if plain is not None:
        assert valid, serializer.errors
        # the view reads a missing or null callback_url as "" either way
        expected = {"callback_url": None, **json.loads(json.dumps(serializer.validated_data))}
        got = {"callback_url": None, **json.loads(json.dumps(plain))}
        expected["callback_url"] = expected["callback_url"] or None
        got["callback_url"] = got["callback_url"] or None
        assert got == expected


@pytest.mark.parametrize(
    "body",
    [
        {"customer_id": "c-42", "items": [{"sku": "TM-MILKTEA-L", "quantity": 2}]},
        {
            "customer_id": "wx:o6_bmjrPTlm6_2sgVt7hMZOPfL2M",
            "items": [{"sku": "A", "quantity": 1}, {"sku": "B", "quantity": 99}],
            "coupon_code": "AWSYY3YS7WWP",
        },
        {"customer_id": "c-1", "items": [{"sku": "A", "quantity": 1}], "coupon_code": None},
    ],
)
def test_common_orders_take_the_plain_path(body: dict[str, object]) -> None:
    assert order_place_plain(body) == body
    assert OrderPlaceIn(data=body).is_valid()


def test_a_good_callback_url_takes_the_plain_path() -> None:
    body = {"customer_id": "c-1", "items": [{"sku": "A", "quantity": 1}]}
    body["callback_url"] = "https://bot.example.com/hooks/orders"
    assert order_place_plain(body) == body


@pytest.mark.parametrize(
    ("url", "allow"),
    [
        ("http://bot.example.com/cb", {"CALLBACK_ALLOW_HTTP": False}),
        ("https://10.0.0.7/cb", {"CALLBACK_ALLOW_PRIVATE": False}),
        ("https://localhost/cb", {"CALLBACK_ALLOW_PRIVATE": False}),
        ("ftp://bot.example.com/cb", {}),
        ("https://bot.example.com/" + "a" * 500, {}),
    ],
)
def test_a_callback_url_the_serializer_refuses_is_left_to_it(url: str, allow: dict) -> None:
    body = {"customer_id": "c-1", "items": [{"sku": "A", "quantity": 1}], "callback_url": url}
    with override_settings(**allow):
        assert order_place_plain(body) is None
        assert "callback_url" in _errors(body)


def _errors(body: dict) -> dict:
    serializer = OrderPlaceIn(data=body)
    assert not serializer.is_valid()
    return serializer.errors


@pytest.mark.parametrize(
    ("url", "setting"),
    [
        ("http://bot.example.com/cb", "CALLBACK_ALLOW_HTTP"),
        ("https://10.0.0.7/cb", "CALLBACK_ALLOW_PRIVATE"),
    ],
)
def test_a_remembered_callback_url_is_judged_again_under_other_settings(
    url: str, setting: str
) -> None:
    # given: the URL passed, and is remembered, while the setting allowed it
    body = {"customer_id": "c-1", "items": [{"sku": "A", "quantity": 1}], "callback_url": url}
    with override_settings(**{setting: True}):
        assert order_place_plain(body) == body
        assert callback_url_vetted(url) == url
    # when: the setting no longer allows it
    with override_settings(**{setting: False}):
        # then: refused, by the plain check and the serializer, the same way every time
        for _ in range(2):
            assert order_place_plain(body) is None
            assert "callback_url" in _errors(body)
            with pytest.raises((DjangoValidationError, ValidationError)):
                callback_url_vetted(url)
