"""One token bucket: the intake's admission script (orders.waiting_line) and
infra.ratelimit.take are written with the same Lua functions (infra.ratelimit.BUCKET_LUA) and
keep a bucket in the same key and form, so each sees what the other took."""

from __future__ import annotations

import pytest

from infra import ratelimit
from infra.ratelimit import Limit
from orders import waiting_line

SLOW = 1 / 3600  # a token an hour: nothing refills during the test


def _admit(bucket: str, limit: tuple[float | None, int]) -> waiting_line.Admission:
    waiting_line.queue_rebuild(None, last_ticket=0, live=0)
    return waiting_line.admit(
        None,
        client_bucket=bucket,
        client_limit=limit,
        customer_bucket="",
        customer_limit=(None, 1),
        ceiling=0,
        longest_wait=0,
        nudge_kind="reserve",
    )


def test_admission_and_take_draw_from_one_bucket() -> None:
    # given: a bucket of three
    limit = Limit(per_second=SLOW, burst=3)
    # when: admission takes one, take asks for all three, admission asks again
    first = _admit("one-bucket", (SLOW, 3))
    taken = ratelimit.take("one-bucket", limit, want=3)
    last = _admit("one-bucket", (SLOW, 3))
    # then: take found the two admission left, and admission then found none
    assert first.outcome == waiting_line.ADMIT_OK
    assert taken.granted == 2
    assert last.outcome == waiting_line.ADMIT_REFUSED
    assert last.retry_after == pytest.approx(taken.retry_after, rel=0.01)


def test_a_stopped_bucket_asks_for_the_same_wait_on_both_paths() -> None:
    # given / when
    admitted = _admit("stopped", (0.0, 1))
    taken = ratelimit.take("stopped", Limit(per_second=0.0))
    # then
    assert admitted.outcome == waiting_line.ADMIT_REFUSED
    assert admitted.retry_after == taken.retry_after == ratelimit.STOPPED_WAIT


# take_each: the claim's client and customer buckets in one round trip must answer as `take`
# called for each in turn does (shop.api.throttling.ChatbotAdmission used to do that).
CASES = {
    "both have tokens": ((SLOW, 2), (SLOW, 2), 0, 0),
    "the customer's is empty": ((SLOW, 2), (SLOW, 1), 0, 1),
    "the client's is empty": ((SLOW, 1), (SLOW, 2), 1, 0),
    "the client's is unlimited": ((None, 1), (SLOW, 1), 0, 1),
    "the customer's is stopped": ((SLOW, 2), (0.0, 1), 0, 0),
    "the client's is stopped": ((0.0, 1), (SLOW, 1), 0, 0),
}


def _sequential(takes: list[tuple[str, Limit]]) -> list[ratelimit.Grant]:
    """The reference: take() for each bucket in turn, stopping at the first refusal."""
    grants = []
    for bucket, limit in takes:
        grant = ratelimit.take(bucket, limit)
        grants.append(grant)
        if not grant.granted:
            break
    return grants


@pytest.mark.parametrize("case", CASES.values(), ids=list(CASES))
def test_take_each_answers_as_take_for_each_in_turn(case: tuple) -> None:
    # given: twin pairs of buckets, each drained by the same amount beforehand
    client, customer, client_spent, customer_spent = case
    answers = {}
    for twin in ("each", "one-by-one"):
        takes = [(f"{twin}-client", Limit(*client)), (f"{twin}-customer", Limit(*customer))]
        for (bucket, limit), spent in zip(takes, (client_spent, customer_spent), strict=True):
            if spent:
                ratelimit.take(bucket, limit, want=spent)
        # when: both are asked for one token each, twice
        if twin == "each":
            answers[twin] = [ratelimit.take_each(takes) for _ in range(2)]
        else:
            answers[twin] = [_sequential(takes) for _ in range(2)]

    # then: the same grants, tokens left and waits (Redis's clock moves: waits to a second)
    def shape(rounds: list[list[ratelimit.Grant]]) -> list:
        return [
            [
                (g.granted, g.tokens if g.tokens is None else round(g.tokens), round(g.retry_after))
                for g in grants
            ]
            for grants in rounds
        ]

    assert shape(answers["each"]) == shape(answers["one-by-one"])
