"""The hand-written check of the common claim body (coupons.api.serializers.coupon_claim_plain)
may only ever accept what CouponClaimIn accepts, with the same result; anything else it leaves
to CouponClaimIn, which explains the error."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import config.urls  # noqa: F401  (loads the API as Django does; infra.api before DRF's views)
from coupons.api import views as coupons_views
from coupons.api.serializers import CouponClaimIn, coupon_claim_plain
from tests.factories.coupons import CampaignFactory

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


# The whole answer, with and without the hand check: each body is posted twice under one
# Idempotency-Key, first with the check as it is, then with the view left to CouponClaimIn
# alone; the second is a replay for a valid body, so both answers must be byte-identical.
ANSWER_BODIES = [
    {"customer_id": "c-42"},
    {"customer_id": "wx:o6_bmjrPTlm6_2sgVt7hMZOPfL2M"},
    {},
    {"customer_id": ""},
    {"customer_id": 42},
    {"customer_id": None},
    {"customer_id": "c 42"},
    {"customer_id": "c-42\n"},
    {"customer_id": "a" * 65},
    {"customer_id": "c-42", "extra": 1},
    ["c-42"],
    "c-42",
]


def _answer(api, body: object, key: str) -> tuple[int, bytes, dict[str, str]]:
    response = api.post(
        "/api/v1/campaigns/plain-or-not/claims/",
        body,
        format="json",
        headers={"Idempotency-Key": key},
    )
    kept = ("Content-Type", "Location", "Retry-After", "WWW-Authenticate", "Vary")
    return response.status_code, response.content, {h: response.get(h) for h in kept}


@pytest.mark.django_db
@pytest.mark.parametrize("body", ANSWER_BODIES, ids=[json.dumps(b) for b in ANSWER_BODIES])
def test_the_answer_is_the_same_without_the_hand_check(
    api, body: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given
    CampaignFactory(slug="plain-or-not")
    key = f"same-{abs(hash(json.dumps(body)))}"
    # when
    plain = _answer(api, body, key)
    monkeypatch.setattr(coupons_views, "coupon_claim_plain", lambda data: None)
    full = _answer(api, body, key)
    # then
    assert plain == full
