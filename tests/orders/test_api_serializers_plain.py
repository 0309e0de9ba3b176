"""The hand-written check of the common order body (orders.api.serializers.order_place_plain)
may only ever accept what OrderPlaceIn accepts, with the same result; anything else it leaves
to OrderPlaceIn, which explains the error."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import config.urls  # noqa: F401  (loads the API as Django does; config.api before DRF's views)
from orders.api.serializers import OrderPlaceIn, order_place_plain

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
bodies = st.one_of(
    st.fixed_dictionaries(
        {"customer_id": scalars, "items": st.one_of(items, scalars)},
        optional={
            "coupon_code": st.one_of(texts, st.none(), st.integers()),
            "callback_url": st.sampled_from(["", None, "https://example.com/cb", "ftp://x"]),
            "extra": scalars,
        },
    ),
    scalars,
    st.lists(scalars, max_size=2),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=bodies)
def test_the_plain_check_accepts_only_what_the_serializer_accepts(body: object) -> None:
    plain = order_place_plain(body)
    serializer = OrderPlaceIn(data=body)
    valid = serializer.is_valid()
    if plain is not None:
        assert valid, serializer.errors
        assert json.loads(json.dumps(plain)) == json.loads(json.dumps(serializer.validated_data))


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


def test_a_callback_url_is_always_left_to_the_serializer() -> None:
    body = {"customer_id": "c-1", "items": [{"sku": "A", "quantity": 1}]}
    assert order_place_plain({**body, "callback_url": "https://example.com/cb"}) is None
