"""Campaigns: seeding and their coupon slices, staff controls (status, limits, totals), and
campaigns written down in a file and loaded (manage.py campaign_load).

# lock order: order → campaign → coupon slice → coupon → product. Counters change only
# through one conditional UPDATE; the CHECK constraints on Campaign and CouponSlice (and the
# slices' caps summing to the campaign's total) stop anything the Python misses.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from datetime import datetime

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from coupons import selectors, sql
from coupons.campaign_spec import CampaignFile, CampaignFileError, CampaignSpec
from coupons.errors import (
    CampaignNotActive,
    SoldOut,
)
from coupons.models import (
    CAMPAIGN_ALLOWED,
    Campaign,
    CampaignEvent,
    CouponSlice,
)
from infra.errors import InvalidInput, InvalidTransition
from infra.memo import copies_changed
from shop import selectors as shop_selectors
from shop import services as shop_services

# --- Campaigns and their coupon slices -------------------------------------------------------


@transaction.atomic
def campaign_seed(
    *,
    slug: str,
    name: str,
    starts_at: datetime,
    ends_at: datetime,
    coupon_valid_until: datetime,
    max_discount: int,
    coupons_total: int,
    budget_total: int,
    per_customer_limit: int = 1,
    backlog_ceiling: int | None = None,
    currency: str = "CNY",
    coupon_kind: str = Campaign.CouponKind.FREE_ORDER,
    status: str = Campaign.Status.ACTIVE,
    budget_held: int = 0,
    budget_spent: int = 0,
    livemode: bool = True,
) -> Campaign:
    """A new campaign with its COUPON_SLICES coupon slices, whose caps share coupons_total
    (a campaign without them fails its commit: see CouponSlice), written as given and not
    audited: for `campaign_create`, and for seeds, benchmarks and tests' factories."""
    campaign = Campaign.objects.create(
        slug=slug,
        name=name,
        status=status,
        starts_at=starts_at,
        ends_at=ends_at,
        coupon_valid_until=coupon_valid_until,
        coupon_kind=coupon_kind,
        max_discount=max_discount,
        currency=currency,
        per_customer_limit=per_customer_limit,
        backlog_ceiling=backlog_ceiling,
        coupons_total=coupons_total,
        budget_total=budget_total,
        budget_held=budget_held,
        budget_spent=budget_spent,
        livemode=livemode,
    )
    count = max(1, settings.COUPON_SLICES)
    CouponSlice.objects.bulk_create(
        CouponSlice(campaign=campaign, number=n, issued=0, cap=cap)
        for n, cap in enumerate(_spread(coupons_total, count))
    )
    return campaign


# What the admin's add form passes on to `campaign_create` (free-order coupons only).
CAMPAIGN_CREATE_FIELDS = (
    "slug",
    "name",
    "starts_at",
    "ends_at",
    "coupon_valid_until",
    "max_discount",
    "currency",
    "per_customer_limit",
    "backlog_ceiling",
    "coupons_total",
    "budget_total",
    "livemode",
)


def _spread(amount: int, parts: int) -> list[int]:
    """`amount` in `parts` nearly equal shares (the first ones take the remainder)."""
    return [amount // parts + (1 if n < amount % parts else 0) for n in range(parts)]


@transaction.atomic
def coupons_issued_add(*, campaign_id: int, count: int) -> None:
    """Count `count` coupons inserted without a claim (the benchmark's and demo's seeds) as
    issued, filling the slices with room in slice order. Raises SoldOut, and counts none,
    when the slices have less room than that. Locks the campaign's slices."""
    if count <= 0:
        return
    slices = list(selectors.coupon_slices_for_update(campaign_id=campaign_id))
    if sum(s.cap - s.issued for s in slices) < count:
        raise SoldOut()
    left = count
    for piece in slices:
        step = min(left, piece.cap - piece.issued)
        if step:
            CouponSlice.objects.filter(pk=piece.pk, issued__lte=F("cap") - step).update(
                issued=F("issued") + step
            )
            left -= step


def _slices_respread(slices: list[CouponSlice], coupons_total: int) -> None:
    """Caps for a new total: the room left (total minus issued) spread evenly again, each
    slice keeping what it issued. The caller holds the slices' locks and checked the total
    is not below the coupons issued."""
    rooms = _spread(coupons_total - sum(s.issued for s in slices), len(slices))
    with connection.cursor() as cursor:
        cursor.execute(sql.SLICES_RESPREAD, [[s.pk for s in slices], rooms])


# --- Staff controls ------------------------------------------------------------------------


@transaction.atomic
def campaign_set_status(*, campaign_id: int, status: str, actor: str) -> Campaign:
    """Pause, resume or end a campaign, recorded as a CampaignEvent.

    Paused: new claims and orders get campaign_not_active in every process within
    CACHE_VERSION_CHECK_SECONDS; orders already in line wait (the sweep drains them within
    seconds of a resume, or rejects them campaign_not_active once the window is over) and
    orders already holding finish their payment. Ended: orders still in line are rejected
    campaign_not_active.
    Setting the status it has already changes nothing. Raises CampaignNotActive for an ended
    campaign, ValueError for an unknown status."""
    campaign = selectors.campaign_for_update(campaign_id=campaign_id)
    if status not in Campaign.Status.values:
        raise ValueError(f"unknown campaign status {status!r}")
    if campaign.status != status:
        campaign_move(campaign, status, actor=actor)
    return campaign


def campaign_move(campaign: Campaign, to: str, *, actor: str) -> Campaign:
    """The one way a campaign's status changes: checked against CAMPAIGN_ALLOWED, recorded as
    a CampaignEvent. The caller holds the campaign's lock (`campaign_for_update`) inside its
    atomic block. Raises CampaignNotActive out of a final status (an ended campaign),
    InvalidTransition for any other move the table refuses. Once committed, every process's
    copy of the campaign is dropped (infra/memo.py): claims and orders meet the new status
    everywhere within CACHE_VERSION_CHECK_SECONDS."""
    if to not in CAMPAIGN_ALLOWED[campaign.status]:
        if not CAMPAIGN_ALLOWED[campaign.status]:
            raise CampaignNotActive("An ended campaign cannot be reopened.")
        raise InvalidTransition(entity="campaign", current=campaign.status, target=to)
    CampaignEvent.objects.create(campaign=campaign, source=campaign.status, target=to, actor=actor)
    campaign.status = to
    campaign.save(update_fields=["status", "updated_at"])
    transaction.on_commit(copies_changed)
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
    and orders from now on (coupons already issued stay valid); a new backlog ceiling or
    window to the orders every process takes in from CACHE_VERSION_CHECK_SECONDS after the
    commit. Raises ValueError for a field staff may not edit and InvalidInput for
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
    transaction.on_commit(copies_changed)  # every process's copy of the terms: infra/memo.py
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
    currency: str = "CNY",
    livemode: bool = True,
) -> Campaign:
    """A new free-order campaign with nothing issued, held or spent, and its coupon slices,
    recorded in the audit log. `livemode=False`: a test campaign, for test keys only
    (docs/integrator-guide.md, Test mode). The window's constraints are the database's (`ends_at >
    starts_at`)."""
    _check_limits({"per_customer_limit": per_customer_limit, "backlog_ceiling": backlog_ceiling})
    campaign = campaign_seed(
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
        currency=currency,
        livemode=livemode,
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
    actor: str,
    coupons_total: int | None = None,
    budget_total: int | None = None,
    max_discount: int | None = None,
) -> Campaign:
    """Set a campaign's coupons, budget and maximum discount (None: unchanged), recorded in
    the audit log.

    Raising is always possible. Lowering stops at what is already committed: the coupons total
    never below the coupons issued, the budget never below what orders hold plus what was
    spent. A new coupons total spreads the room left over the campaign's slices again, each
    keeping what it issued. The maximum discount is copied into each coupon when it is issued,
    so it may change only while none is. Raises InvalidInput naming each field that may not
    change so, and changes nothing then. Takes the campaign's row lock, then its slices'
    (lock order); claims and holds wait for it.
    """
    campaign = selectors.campaign_for_update(campaign_id=campaign_id)
    slices = list(selectors.coupon_slices_for_update(campaign_id=campaign_id))
    issued = sum(s.issued for s in slices)
    wanted = {
        "coupons_total": campaign.coupons_total if coupons_total is None else coupons_total,
        "budget_total": campaign.budget_total if budget_total is None else budget_total,
        "max_discount": campaign.max_discount if max_discount is None else max_discount,
    }
    changed = {k: v for k, v in wanted.items() if getattr(campaign, k) != v}
    problems: dict[str, list[str]] = {}
    if wanted["coupons_total"] < issued:
        problems["coupons_total"] = [
            f"{issued} coupons are already issued; the total cannot be {wanted['coupons_total']}."
        ]
    committed = campaign.budget_held + campaign.budget_spent
    if wanted["budget_total"] < committed:
        problems["budget_total"] = [
            f"{committed} fen are already held or spent; "
            f"the budget cannot be {wanted['budget_total']}."
        ]
    if "max_discount" in changed and issued > 0:
        problems["max_discount"] = [
            f"Coupons were issued with a maximum discount of {campaign.max_discount} fen; "
            "it cannot change."
        ]
    if problems:
        raise InvalidInput(f"Campaign {campaign.slug} cannot change so.", fields=problems)
    if not changed:
        return campaign
    now = timezone.now()
    if "coupons_total" in changed:
        _slices_respread(slices, changed["coupons_total"])
    # Conditional, like every counter move; the CHECK constraints (and the slices' caps
    # summing to the total, checked at commit) back it up.
    Campaign.objects.filter(
        pk=campaign_id, budget_held__lte=wanted["budget_total"] - F("budget_spent")
    ).update(**changed, updated_at=now)
    transaction.on_commit(copies_changed)  # a raised total ends "sold out" in every process
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
