"""Writes to campaigns and coupons: claims, and the coupon and budget side of order holds.

# lock order: order → campaign → coupon → product. Counters change only through one
# conditional UPDATE; the CHECK constraints on Campaign stop anything the Python misses.
"""

from __future__ import annotations

import secrets
from collections.abc import Collection, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from config.errors import IdempotencyKeyReused, InvalidInput
from coupons import selectors
from coupons.campaign_spec import CampaignFile, CampaignFileError, CampaignSpec
from coupons.errors import (
    BudgetExhausted,
    BudgetNotSpent,
    CampaignNotActive,
    CouponNotHeld,
    LimitReached,
    SoldOut,
)
from coupons.models import Campaign, CampaignEvent, Coupon
from shop import selectors as shop_selectors
from shop import services as shop_services

# Unambiguous alphabet for codes a shopper may read out to a chatbot.
_CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


def _new_code() -> str:
    return "".join(secrets.choice(_CODE_ALPHABET) for _ in range(12))


@dataclass(frozen=True)
class Claim:
    coupon: Coupon
    created: bool


def coupon_claim(*, client_id: int, slug: str, customer_id: str, idempotency_key: str) -> Claim:
    """Issue one coupon of campaign `slug` to the customer.

    Replays of the same key return the first coupon; the same key for another customer or
    campaign raises IdempotencyKeyReused. Raises NotFound, CampaignNotActive, SoldOut,
    LimitReached. Locks nothing explicitly: the coupon counter is one conditional UPDATE and
    the per-customer limit is a unique (campaign, customer, slot).
    """
    replay = _claim_replay(client_id=client_id, idempotency_key=idempotency_key)
    if replay is not None:
        return _claim_check_same(replay, slug=slug, customer_id=customer_id)
    campaign = selectors.campaign_get(slug=slug)
    if not campaign.is_open_at(timezone.now()):
        raise CampaignNotActive()
    if campaign.coupons_remaining <= 0:
        raise SoldOut()  # answered without a write
    # Two attempts: a concurrent claim of the same customer may take the slot we counted.
    for _ in range(2):
        held = selectors.coupon_count_for_customer(campaign_id=campaign.pk, customer_id=customer_id)
        if held >= campaign.per_customer_limit:
            raise LimitReached()
        try:
            coupon = _coupon_issue(campaign, client_id, customer_id, idempotency_key, slot=held + 1)
        except IntegrityError:
            replay = _claim_replay(client_id=client_id, idempotency_key=idempotency_key)
            if replay is not None:
                return _claim_check_same(replay, slug=slug, customer_id=customer_id)
            continue
        return Claim(coupon=coupon, created=True)
    raise LimitReached()


@transaction.atomic
def _coupon_issue(
    campaign: Campaign, client_id: int, customer_id: str, idempotency_key: str, *, slot: int
) -> Coupon:
    taken = Campaign.objects.filter(pk=campaign.pk, coupons_issued__lt=F("coupons_total")).update(
        coupons_issued=F("coupons_issued") + 1, updated_at=timezone.now()
    )
    if taken == 0:
        raise SoldOut()
    return Coupon.objects.create(
        code=_new_code(),
        campaign=campaign,
        client_id=client_id,
        customer_id=customer_id,
        slot=slot,
        max_discount=campaign.max_discount,
        currency=campaign.currency,
        valid_until=campaign.coupon_valid_until,
        idempotency_key=idempotency_key,
    )


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


# --- The coupon and budget side of an order's hold ----------------------------------------
# Called by orders' services inside their transaction, after they locked the orders.


def coupons_hold(*, coupon_ids: Collection[int]) -> None:
    """issued → reserved for every coupon, or CouponNotHeld (the caller rolls back)."""
    _coupons_move(coupon_ids, Coupon.Status.ISSUED, Coupon.Status.RESERVED)


def coupons_release(*, coupon_ids: Collection[int]) -> None:
    """reserved → issued: the order gave its coupon back (cancelled, declined, expired)."""
    _coupons_move(coupon_ids, Coupon.Status.RESERVED, Coupon.Status.ISSUED)


def coupons_redeem(*, coupon_ids: Collection[int]) -> None:
    """reserved → redeemed: the order is paid."""
    _coupons_move(coupon_ids, Coupon.Status.RESERVED, Coupon.Status.REDEEMED)


def _coupons_move(coupon_ids: Collection[int], source: str, target: str) -> None:
    if not coupon_ids:
        return
    moved = Coupon.objects.filter(pk__in=list(coupon_ids), status=source).update(
        status=target, updated_at=timezone.now()
    )
    if moved != len(set(coupon_ids)):
        raise CouponNotHeld(f"{len(coupon_ids) - moved} coupon(s) were not {source}.")


def budget_hold(*, campaign_id: int, amount: int) -> None:
    """Hold `amount` fen of the campaign's budget, or raise BudgetExhausted."""
    if amount <= 0:
        return
    taken = Campaign.objects.filter(
        pk=campaign_id, budget_held__lte=F("budget_total") - F("budget_spent") - amount
    ).update(budget_held=F("budget_held") + amount, updated_at=timezone.now())
    if taken == 0:
        raise BudgetExhausted()


def budget_release(*, campaign_id: int, amount: int) -> None:
    """Give held budget back. The caller releases each hold once (it closes the hold's row)."""
    if amount > 0:
        Campaign.objects.filter(pk=campaign_id).update(
            budget_held=F("budget_held") - amount, updated_at=timezone.now()
        )


def budget_spend(*, campaign_id: int, amount: int) -> None:
    """Turn held budget into spent budget: the orders holding it are paid."""
    if amount > 0:
        Campaign.objects.filter(pk=campaign_id).update(
            budget_held=F("budget_held") - amount,
            budget_spent=F("budget_spent") + amount,
            updated_at=timezone.now(),
        )


def budget_refund(*, campaign_id: int, amount: int) -> None:
    """Give a refunded order's discount back to the campaign's budget: spent becomes available
    again. One conditional UPDATE; raises BudgetNotSpent (and gives nothing back) when the
    campaign has spent less than `amount`, which only a bug could cause."""
    if amount <= 0:
        return
    refunded = Campaign.objects.filter(pk=campaign_id, budget_spent__gte=amount).update(
        budget_spent=F("budget_spent") - amount, updated_at=timezone.now()
    )
    if refunded == 0:
        raise BudgetNotSpent()


def coupons_expire(*, now: datetime | None = None) -> int:
    """Mark issued coupons past their validity as expired (the sweep). Returns how many."""
    now = now or timezone.now()
    return Coupon.objects.filter(status=Coupon.Status.ISSUED, valid_until__lte=now).update(
        status=Coupon.Status.EXPIRED, updated_at=now
    )


# --- Staff controls ------------------------------------------------------------------------


@transaction.atomic
def campaign_set_status(*, campaign_id: int, status: str, actor: str) -> Campaign:
    """Pause, resume or end a campaign, recorded as a CampaignEvent.

    Paused: new claims and orders get campaign_not_active at once; orders already in line
    wait (the sweep drains them within seconds of a resume) and orders already holding
    finish their payment. Ended: orders still in line are rejected campaign_not_active."""
    campaign = selectors.campaign_for_update(campaign_id=campaign_id)
    if status not in Campaign.Status.values:
        raise ValueError(f"unknown campaign status {status!r}")
    if campaign.status == Campaign.Status.ENDED and status != Campaign.Status.ENDED:
        raise CampaignNotActive("An ended campaign cannot be reopened.")
    if campaign.status != status:
        CampaignEvent.objects.create(
            campaign=campaign, source=campaign.status, target=status, actor=actor
        )
        campaign.status = status
        campaign.save(update_fields=["status", "updated_at"])
    return campaign


_STATUS_ACTIONS = {
    Campaign.Status.PAUSED: "campaign.pause",
    Campaign.Status.ACTIVE: "campaign.resume",
    Campaign.Status.ENDED: "campaign.end",
}


@transaction.atomic
def campaign_status_change(*, campaign_id: int, status: str, actor: str) -> Campaign:
    """`campaign_set_status` as a staff control: the change also goes to the audit log, with
    the status before and after (nothing is recorded when the status was already that).
    Raises CampaignNotActive for an ended campaign, ValueError for an unknown status."""
    before = selectors.campaign_for_update(campaign_id=campaign_id).status
    campaign = campaign_set_status(campaign_id=campaign_id, status=status, actor=actor)
    if campaign.status != before:
        shop_services.audit_record(
            actor=actor,
            action=_STATUS_ACTIONS.get(status, "campaign.status"),
            target_type="campaign",
            target_id=campaign.pk,
            target_repr=campaign.slug,
            before={"status": before},
            after={"status": campaign.status},
        )
    return campaign


# What staff may edit on a campaign that exists. Counters, money and status move only through
# their services; the coupon terms and totals are fixed at creation.
CAMPAIGN_EDITABLE = frozenset(
    {
        "slug",
        "name",
        "starts_at",
        "ends_at",
        "coupon_valid_until",
        "per_customer_limit",
        "backlog_ceiling",
    }
)
CAMPAIGN_LIMITS = ("per_customer_limit", "backlog_ceiling")


@transaction.atomic
def campaign_update(
    *, campaign_id: int, changes: Mapping[str, object], actor: str, action: str = "campaign.edit"
) -> Campaign:
    """Change a campaign's editable terms (name, window, per-customer limit, backlog ceiling),
    with the values before and after in the audit log.

    One UPDATE of only the columns that change, under the campaign's row lock, so the coupons
    claimed and the budget held meanwhile are kept. A new per-customer limit applies to claims
    and orders from now on (coupons already issued stay valid); a new backlog ceiling to the
    next order taken in. Raises ValueError for a field staff may not edit and InvalidInput for
    a limit out of range (per-customer limit at least 1; ceiling empty or at least 1).
    """
    not_editable = sorted(set(changes) - CAMPAIGN_EDITABLE)
    if not_editable:
        raise ValueError(f"not editable on a campaign: {', '.join(not_editable)}")
    _check_limits(changes)
    campaign = selectors.campaign_for_update(campaign_id=campaign_id)
    before = {name: getattr(campaign, name) for name in changes}
    changed = {name: value for name, value in changes.items() if before[name] != value}
    if not changed:
        return campaign
    now = timezone.now()
    Campaign.objects.filter(pk=campaign_id).update(**changed, updated_at=now)
    for name, value in changed.items():
        setattr(campaign, name, value)
    campaign.updated_at = now
    shop_services.audit_record(
        actor=actor,
        action=action,
        target_type="campaign",
        target_id=campaign.pk,
        target_repr=campaign.slug,
        before={name: _plain(before[name]) for name in changed},
        after={name: _plain(value) for name, value in changed.items()},
    )
    return campaign


def _check_limits(changes: Mapping[str, object]) -> None:
    problems: dict[str, list[str]] = {}
    limit = changes.get("per_customer_limit", 1)
    if not isinstance(limit, int) or limit < 1:
        problems["per_customer_limit"] = ["At least 1."]
    ceiling = changes.get("backlog_ceiling")
    if ceiling is not None and (not isinstance(ceiling, int) or ceiling < 1):
        problems["backlog_ceiling"] = ["Empty (the default) or at least 1."]
    if problems:
        raise InvalidInput("A limit is out of range.", fields=problems)


def _plain(value: object) -> object:
    """A value as the audit log's JSON keeps it."""
    return value.isoformat() if isinstance(value, datetime) else value


# --- Campaigns written down and loaded (manage.py campaign_load) ------------------------------

CAMPAIGN_TERMS = (
    "name",
    "starts_at",
    "ends_at",
    "coupon_valid_until",
    "per_customer_limit",
    "backlog_ceiling",
)


@transaction.atomic
def campaign_create(
    *,
    slug: str,
    name: str,
    starts_at: datetime,
    ends_at: datetime,
    coupon_valid_until: datetime,
    max_discount: int,
    coupons_total: int,
    budget_total: int,
    per_customer_limit: int,
    backlog_ceiling: int | None,
    actor: str,
) -> Campaign:
    """A new free-order campaign with nothing issued, held or spent, recorded in the audit log.
    The window's constraints are the database's (`ends_at > starts_at`)."""
    _check_limits({"per_customer_limit": per_customer_limit, "backlog_ceiling": backlog_ceiling})
    campaign = Campaign.objects.create(
        slug=slug,
        name=name,
        starts_at=starts_at,
        ends_at=ends_at,
        coupon_valid_until=coupon_valid_until,
        max_discount=max_discount,
        coupons_total=coupons_total,
        budget_total=budget_total,
        per_customer_limit=per_customer_limit,
        backlog_ceiling=backlog_ceiling,
    )
    shop_services.audit_record(
        actor=actor,
        action="campaign.create",
        target_type="campaign",
        target_id=campaign.pk,
        target_repr=slug,
        after={
            "max_discount": max_discount,
            "coupons_total": coupons_total,
            "budget_total": budget_total,
            **{name: _plain(getattr(campaign, name)) for name in CAMPAIGN_TERMS},
        },
    )
    return campaign


@transaction.atomic
def campaign_totals_change(
    *,
    campaign_id: int,
    coupons_total: int,
    budget_total: int,
    max_discount: int,
    actor: str,
) -> Campaign:
    """Set a campaign's coupons, budget and maximum discount, recorded in the audit log.

    Raising is always possible. Lowering stops at what is already committed: the coupons total
    never below the coupons issued, the budget never below what orders hold plus what was
    spent. The maximum discount is copied into each coupon when it is issued, so it may change
    only while none is. Raises InvalidInput naming each field that may not change so, and
    changes nothing then. Takes the campaign's row lock; claims and holds wait for it.
    """
    campaign = selectors.campaign_for_update(campaign_id=campaign_id)
    wanted = {
        "coupons_total": coupons_total,
        "budget_total": budget_total,
        "max_discount": max_discount,
    }
    changed = {k: v for k, v in wanted.items() if getattr(campaign, k) != v}
    problems: dict[str, list[str]] = {}
    if coupons_total < campaign.coupons_issued:
        problems["coupons_total"] = [
            f"{campaign.coupons_issued} coupons are already issued; "
            f"the total cannot be {coupons_total}."
        ]
    committed = campaign.budget_held + campaign.budget_spent
    if budget_total < committed:
        problems["budget_total"] = [
            f"{committed} fen are already held or spent; the budget cannot be {budget_total}."
        ]
    if "max_discount" in changed and campaign.coupons_issued > 0:
        problems["max_discount"] = [
            f"Coupons were issued with a maximum discount of {campaign.max_discount} fen; "
            "it cannot change."
        ]
    if problems:
        raise InvalidInput(f"Campaign {campaign.slug} cannot change so.", fields=problems)
    if not changed:
        return campaign
    now = timezone.now()
    # Conditional, like every counter move; the CHECK constraints back it up.
    Campaign.objects.filter(
        pk=campaign_id,
        coupons_issued__lte=coupons_total,
        budget_held__lte=budget_total - F("budget_spent"),
    ).update(**changed, updated_at=now)
    shop_services.audit_record(
        actor=actor,
        action="campaign.totals",
        target_type="campaign",
        target_id=campaign.pk,
        target_repr=campaign.slug,
        before={k: getattr(campaign, k) for k in changed},
        after=changed,
    )
    for name, value in changed.items():
        setattr(campaign, name, value)
    campaign.updated_at = now
    return campaign


@transaction.atomic
def campaign_load(*, document: CampaignFile, actor: str) -> list[str]:
    """Bring the database to what a campaign file says, all or nothing: stores and products
    first (shop's services), then the campaign, created or changed. Loading the same file
    again changes nothing. Each change is in the audit log under `actor`. Returns a line per
    thing created or changed. Raises CampaignFileError naming each field that may not change
    so (fewer coupons than issued, less budget than held and spent, fewer units than held and
    sold, another maximum discount once coupons are issued, a store that does not exist), and
    then nothing is changed at all."""
    done: list[str] = []
    problems: list[str] = []
    for store in document.stores:
        put = shop_services.store_put(slug=store.slug, name=store.name, actor=actor)
        done += _said(f"store {store.slug}", put)
    for index, product in enumerate(document.products):
        store_id = shop_selectors.store_id_for_slug(product.store)
        if store_id is None:
            problems.append(f"products[{index}].store: No store {product.store!r}.")
            continue
        try:
            put = shop_services.product_put(
                sku=product.sku,
                name=product.name,
                store_id=store_id,
                price=product.price,
                stock_total=product.stock,
                actor=actor,
            )
        except InvalidInput as exc:
            problems += _field_problems(f"products[{index}]", exc)
            continue
        done += _said(f"product {product.sku}", put)
    try:
        done += _campaign_put(document.campaign, actor=actor)
    except InvalidInput as exc:
        problems += _field_problems("campaign", exc)
    if problems:
        raise CampaignFileError(problems)  # rolls back everything done above
    return done


def _campaign_put(spec: CampaignSpec, *, actor: str) -> list[str]:
    existing = selectors.campaign_by_slug(slug=spec.slug)
    if existing is None:
        campaign_create(**asdict(spec), actor=actor)
        return [f"campaign {spec.slug}: created"]
    before = {
        name: getattr(existing, name)
        for name in (*CAMPAIGN_TERMS, "coupons_total", "budget_total", "max_discount")
    }
    campaign_totals_change(
        campaign_id=existing.pk,
        coupons_total=spec.coupons_total,
        budget_total=spec.budget_total,
        max_discount=spec.max_discount,
        actor=actor,
    )
    campaign_update(
        campaign_id=existing.pk,
        changes={name: getattr(spec, name) for name in CAMPAIGN_TERMS},
        actor=actor,
        action="campaign.load",
    )
    return [
        f"campaign {spec.slug}: {name} {_plain(old)} -> {_plain(getattr(spec, name))}"
        for name, old in before.items()
        if old != getattr(spec, name)
    ]


def _said(what: str, put: shop_services.Put) -> list[str]:
    if put.created:
        return [f"{what}: created"]
    return [f"{what}: {name} {old} -> {new}" for name, (old, new) in put.changes.items()]


def _field_problems(prefix: str, exc: InvalidInput) -> list[str]:
    fields = exc.extra.get("fields")
    if not isinstance(fields, dict) or not fields:
        return [f"{prefix}: {exc.detail}"]
    return [
        f"{prefix}.{name}: {message}"
        for name, messages in fields.items()
        for message in (messages if isinstance(messages, list) else [messages])
    ]
