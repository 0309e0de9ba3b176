"""The hand-written check of the common claim body (coupons.api.serializers.coupon_claim_plain)
may only ever accept what CouponClaimIn accepts, with the same result; anything else it leaves
to CouponClaimIn, which explains the error."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import config.urls  # noqa: F401  (loads the API as Django does; infra.api before DRF's views)
from coupons.api.serializers import CouponClaimIn, coupon_claim_plain

texts = st.one_of(
    st.text(max_size=70),
    st.from_regex(r"[A-Za-z0-9_.:-]{1,64}", fullmatch=True),
    st.sampled_from(
        ["", " c-1", "c-1 ", "c-1\n", "a" * 64, "a" * 65, "x\x00y", "茶", "wx:o6_bm.j-1"]
    ),
)
scalars = st.one_of(
    texts, st.integers(-5, 120), st.booleans(), st.none(), st.floats(allow_nan=False)
)
bodies = st.one_of(
    st.fixed_dictionaries({"customer_id": scalars}),
    st.fixed_dictionaries({"customer_id": scalars}, optional={"extra": scalars}),
    st.dictionaries(st.sampled_from(["customer_id", "customer", "coupon_code"]), scalars),
    scalars,
    st.lists(scalars, max_size=2),
)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=bodies)
def test_the_plain_check_accepts_only_what_the_serializer_accepts(body: object) -> None:
    plain = coupon_claim_plain(body)
    serializer = CouponClaimIn(data=body)
    valid = serializer.is_valid()
    if plain is not None:
        assert valid, serializer.errors
        assert plain == dict(serializer.validated_data)


@pytest.mark.parametrize("customer_id", ["c-42", "wx:o6_bmjrPTlm6_2sgVt7hMZOPfL2M", "a" * 64])
def test_common_claims_take_the_plain_path(customer_id: str) -> None:
    body = {"customer_id": customer_id}
    assert coupon_claim_plain(body) == body
    assert CouponClaimIn(data=body).is_valid()


@pytest.mark.parametrize(
    "body", [{}, {"customer_id": "c-1\n"}, {"customer_id": 42}, {"customer_id": "c-1", "x": 1}]
)
def test_what_the_serializer_refuses_is_left_to_it(body: dict) -> None:
    assert coupon_claim_plain(body) is None
    assert not CouponClaimIn(data=body).is_valid()
