"""A shopper claims a campaign coupon: one statement takes a slice with room and inserts the
coupon; replays and refusals are told apart after a failed insert.

# lock order: order → campaign → coupon slice → coupon → product. Counters change only
# through one conditional UPDATE; the CHECK constraints on Campaign and CouponSlice (and the
# slices' caps summing to the campaign's total) stop anything the Python misses.
"""

from __future__ import annotations

import secrets
from contextlib import nullcontext
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, connections, router, transaction
from django.utils import timezone

from coupons import selectors, sql
from coupons.errors import (
    CampaignNotActive,
    LimitReached,
    SoldOut,
)
from coupons.models import (
    Campaign,
    Coupon,
)
from infra.errors import IdempotencyKeyReused

# Unambiguous alphabet for codes a shopper may read out to a chatbot.
_CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


def _new_code() -> str:
    return "".join(secrets.choice(_CODE_ALPHABET) for _ in range(12))


@dataclass(frozen=True)
class Claim:
    coupon: Coupon
    created: bool


_COUPON_COLUMNS = [f.attname for f in Coupon._meta.concrete_fields]  # sql.CLAIM_*'s RETURNING

# Unique constraints a claim's insert may meet, and what each means.
_REPLAYED = "coupon_claim_once"  # the client's Idempotency-Key was used before
_SLOT_TAKEN = {"coupon_one_per_customer_slot", "coupons_coupon_code_key"}  # try again


def coupon_claim(
    *, client_id: int, slug: str, customer_id: str, idempotency_key: str, livemode: bool = True
) -> Claim:
    """Issue one coupon of campaign `slug` to the customer.

    Replays of the same key return the first coupon; the same key for another customer or
    campaign raises IdempotencyKeyReused. Raises NotFound, CampaignNotActive, SoldOut,
    LimitReached; NotFound also for a campaign of the other mode than the key's `livemode`
    (docs/integrator-guide.md, Test mode). A new claim is one statement in autocommit (the
    campaign's id from a per-process cache): it takes one coupon from one of the campaign's
    slices and inserts it, or writes nothing; only then do follow-up reads find out why.
    Locks one slice row for the statement; the campaign row is not locked.
    """
    campaign = selectors.campaign_terms_by_slug(slug=slug, livemode=livemode)
    if not campaign.is_open_at(timezone.now()) or selectors.campaign_sold_out_seen(campaign.pk):
        # Hopeless by this process's copy (coupons.selectors): a replay still gets its coupon.
        replay = _claim_replay(client_id=client_id, idempotency_key=idempotency_key)
        if replay is not None:
            return _claim_check_same(replay, slug=slug, customer_id=customer_id)
        if not campaign.is_open_at(timezone.now()):
            raise CampaignNotActive()
        raise SoldOut()
    # Three attempts: a concurrent claim of the same customer may take the slot we counted,
    # and every slice with room may be held by other claims (then the next attempt waits).
    wait = False
    for _ in range(3):
        try:
            coupon = _coupon_issue(
                campaign_id=campaign.pk,
                slug=slug,
                client_id=client_id,
                customer_id=customer_id,
                idempotency_key=idempotency_key,
                wait=wait,
            )
        except IntegrityError as exc:
            constraint = _constraint_of(exc)
            if constraint == _REPLAYED:
                replay = _claim_replay(client_id=client_id, idempotency_key=idempotency_key)
                if replay is not None:
                    return _claim_check_same(replay, slug=slug, customer_id=customer_id)
            elif constraint not in _SLOT_TAKEN:
                raise
            continue
        if coupon is not None:
            return Claim(coupon=coupon, created=True)
        replayed = _claim_refused(
            client_id=client_id, slug=slug, customer_id=customer_id, key=idempotency_key
        )
        if replayed is not None:
            return replayed
        wait = True
    raise LimitReached()


def _coupon_issue(
    *,
    campaign_id: int,
    slug: str,
    client_id: int,
    customer_id: str,
    idempotency_key: str,
    wait: bool,
) -> Coupon | None:
    """The claim's statement: the new coupon, or None when nothing was written. Skips the
    slices other claims hold, unless `wait`."""
    params = {
        "campaign": campaign_id,
        "slug": slug,
        "active": Campaign.Status.ACTIVE,
        "now": timezone.now(),
        "customer": customer_id,
        "start": secrets.randbelow(max(1, settings.COUPON_SLICES)),
        "code": _new_code(),
        "client": client_id,
        "issued": Coupon.Status.ISSUED,
        "key": idempotency_key,
    }
    db = connections[router.db_for_write(Coupon)]
    # Inside a caller's transaction the statement needs a savepoint, so that a unique
    # violation leaves the transaction usable; in autocommit it is its own transaction.
    scope = transaction.atomic(using=db.alias) if db.in_atomic_block else nullcontext()
    with scope, db.cursor() as cursor:
        cursor.execute(sql.CLAIM_WAITING if wait else sql.CLAIM_SKIPPING, params)
        row = cursor.fetchone()
    return None if row is None else Coupon.from_db(db.alias, _COUPON_COLUMNS, row)


def _constraint_of(exc: IntegrityError) -> str | None:
    diag = getattr(exc.__cause__, "diag", None)
    return getattr(diag, "constraint_name", None)


def _claim_refused(*, client_id: int, slug: str, customer_id: str, key: str) -> Claim | None:
    """Why the claim's statement wrote nothing, from fresh reads, in the order the API has
    always answered: the replay, then the campaign's window, its stock, the customer's limit.
    Raises the refusal; returns the replayed claim, or None when nothing stands in the way
    any more (every slice with room was held by other claims, or a slot freed by a
    concurrent claim's rollback: try again)."""
    replay = _claim_replay(client_id=client_id, idempotency_key=key)
    if replay is not None:
        return _claim_check_same(replay, slug=slug, customer_id=customer_id)
    version = selectors.sold_out_cache.version()  # before the read the note rests on
    campaign = selectors.campaign_get(slug=slug)
    if not campaign.is_open_at(timezone.now()):
        raise CampaignNotActive()
    if campaign.coupons_remaining <= 0:
        selectors.campaign_sold_out_note(campaign.pk, version=version)
        raise SoldOut()
    held = selectors.coupon_count_for_customer(campaign_id=campaign.pk, customer_id=customer_id)
    if held >= campaign.per_customer_limit:
        raise LimitReached()
    return None


def _claim_replay(*, client_id: int, idempotency_key: str) -> Coupon | None:
    return (
        Coupon.objects.select_related("campaign")
        .filter(client_id=client_id, idempotency_key=idempotency_key)
        .first()
    )


def _claim_check_same(coupon: Coupon, *, slug: str, customer_id: str) -> Claim:
    if coupon.campaign.slug != slug or coupon.customer_id != customer_id:
        raise IdempotencyKeyReused()
    return Claim(coupon=coupon, created=False)
