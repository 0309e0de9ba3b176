"""Reads of campaigns and coupons."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from django.conf import settings
from django.db.models import OuterRef, QuerySet, Subquery, Sum
from django.db.models.functions import Coalesce

from coupons import sql
from coupons.models import Campaign, Coupon, CouponSlice
from infra.errors import NotFound
from infra.memo import TtlCache
from infra.sql import prepared_objects, prepared_rows


def campaigns_with_issued(queryset: QuerySet[Campaign] | None = None) -> QuerySet[Campaign]:
    """Campaigns annotated with `coupons_issued`, the sum of their coupon slices (which
    `Campaign.coupons_remaining` needs): one subquery per row over coupon_slice_number."""
    issued = (
        CouponSlice.objects.filter(campaign=OuterRef("pk"))
        .values("campaign")
        .annotate(issued=Sum("issued"))
        .values("issued")
    )
    queryset = Campaign.objects.all() if queryset is None else queryset
    return queryset.annotate(coupons_issued=Coalesce(Subquery(issued), 0))


def campaign_coupons_issued(*, campaign_id: int) -> int:
    """Coupons issued by the campaign so far: the sum of its slices."""
    total = CouponSlice.objects.filter(campaign_id=campaign_id).aggregate(n=Sum("issued"))["n"]
    return int(total or 0)


def coupon_slices_for_update(*, campaign_id: int) -> QuerySet[CouponSlice]:
    """Lock the campaign's slices, in slice order (after the campaign: lock order)."""
    return (
        CouponSlice.objects.select_for_update(no_key=True)
        .filter(campaign_id=campaign_id)
        .order_by("number")
    )


def campaign_list(*, livemode: bool | None = None) -> QuerySet[Campaign]:
    """Every campaign, or those of one mode (docs/integrator-guide.md, Test mode): a key
    lists its own mode's, business figures count live ones only."""
    qs = campaigns_with_issued()
    if livemode is not None:
        qs = qs.filter(livemode=livemode)
    return qs.order_by("-starts_at", "slug")


def campaign_get(*, slug: str, livemode: bool | None = None) -> Campaign:
    """The campaign, or NotFound; with `livemode`, a campaign of the other mode is NotFound
    too (a test key never sees a live campaign, nor a live key a test one)."""
    qs = campaigns_with_issued().filter(slug=slug)
    if livemode is not None:
        qs = qs.filter(livemode=livemode)
    campaign = qs.first()
    if campaign is None:
        raise NotFound(f"No campaign {slug!r}.")
    return campaign


def campaign_read(*, campaign_id: int) -> Campaign:
    """The campaign row as committed now, unlocked (`campaign_for_update` locks it)."""
    for campaign in prepared_objects(Campaign, sql.CAMPAIGN_READ, [campaign_id]):
        return campaign
    raise Campaign.DoesNotExist(f"No campaign {campaign_id}.")


def coupons_read(*, coupon_ids: Iterable[int]) -> dict[int, Coupon]:
    """Coupons as committed now, unlocked (`coupons_for_update` locks them)."""
    return {c.pk: c for c in prepared_objects(Coupon, sql.COUPONS_READ, [list(coupon_ids)])}


def campaign_for_update(*, campaign_id: int) -> Campaign:
    """Lock the campaign row (lock order: order → campaign → coupon → product)."""
    for campaign in prepared_objects(Campaign, sql.CAMPAIGN_FOR_UPDATE, [campaign_id]):
        return campaign
    raise Campaign.DoesNotExist(f"No campaign {campaign_id}.")


def coupon_by_code(*, code: str) -> Coupon | None:
    return Coupon.objects.select_related("campaign").filter(code=code).first()


@dataclass(frozen=True)
class CouponTerms:
    """What intake needs of a coupon: whose it is, which campaign's, how much it takes off."""

    id: int
    client_id: int
    customer_id: str
    campaign_id: int
    max_discount: int


def coupon_terms(*, code: str) -> CouponTerms | None:
    """One prepared statement: intake runs it for every order that names a coupon, and the
    ORM's compiler and PostgreSQL's planner cost more than the lookup itself."""
    rows = prepared_rows(sql.COUPON_TERMS, [code])
    return CouponTerms(*rows[0]) if rows else None


# Per-process copies for the request path (infra/memo.py): every change staff make through
# coupons.services (a pause, a resume, the terms, limits and totals) reaches them in every
# process within CACHE_VERSION_CHECK_SECONDS; the counters every hold or claim moves (budget
# held and spent, coupons issued) may be INTAKE_CACHE_SECONDS old.
campaign_cache: TtlCache[int, Campaign] = TtlCache(lambda: settings.INTAKE_CACHE_SECONDS)
campaign_by_slug_cache: TtlCache[str, Campaign] = TtlCache(lambda: settings.INTAKE_CACHE_SECONDS)
sold_out_cache: TtlCache[int, bool] = TtlCache(lambda: settings.INTAKE_CACHE_SECONDS)


def campaign_terms(*, campaign_id: int) -> Campaign:
    """The campaign as intake judges it (window, status, budget left, backlog ceiling), from
    this process's copy; the reservation worker checks the campaign again under its lock, so
    an order let in with a budget a moment old is rejected there."""
    found = campaign_cache.lookup(
        [campaign_id], lambda ids: {c.pk: c for c in Campaign.objects.filter(pk__in=ids)}
    )
    if campaign_id not in found:
        raise Campaign.DoesNotExist(f"No campaign {campaign_id}.")
    return found[campaign_id]


def campaign_terms_by_slug(*, slug: str, livemode: bool = True) -> Campaign:
    """The campaign as a claim first judges it (its id, window, status), from this process's
    copy; the claim's statement checks the campaign row again. Raises NotFound, also for a
    campaign of the other mode: a test key never sees a live campaign, nor a live key a test
    one (docs/integrator-guide.md, Test mode). Without `coupons_issued`: stock is counted in
    the slices."""
    found = campaign_by_slug_cache.lookup(
        [slug], lambda slugs: {c.slug: c for c in Campaign.objects.filter(slug__in=slugs)}
    )
    if slug not in found or found[slug].livemode != livemode:
        raise NotFound(f"No campaign {slug!r}.")
    return found[slug]


def campaign_sold_out_seen(campaign_id: int) -> bool:
    """Whether this process found the campaign sold out less than INTAKE_CACHE_SECONDS ago,
    and staff have not changed it since: claims then answer sold_out after only the replay
    check."""
    return bool(sold_out_cache.get_many([campaign_id]))


def campaign_sold_out_note(campaign_id: int, *, version: str | None) -> None:
    """Remember that the campaign was found sold out by a read that began under `version`
    (`sold_out_cache.version()`, taken before it)."""
    sold_out_cache.put_many({campaign_id: True}, version=version)


def coupons_for_update(*, coupon_ids: Iterable[int]) -> dict[int, Coupon]:
    return {c.pk: c for c in prepared_objects(Coupon, sql.COUPONS_FOR_UPDATE, [list(coupon_ids)])}


def coupon_list_for_customer(
    *, client_id: int, customer_id: str, livemode: bool = True
) -> QuerySet[Coupon]:
    """The customer's coupons from campaigns of the key's mode (docs/integrator-guide.md, Test
    mode)."""
    return (
        Coupon.objects.filter(
            client_id=client_id, customer_id=customer_id, campaign__livemode=livemode
        )
        .select_related("campaign")
        .order_by("-id")
    )


def coupon_count_for_customer(*, campaign_id: int, customer_id: str) -> int:
    return Coupon.objects.filter(campaign_id=campaign_id, customer_id=customer_id).count()


# --- For the staff admin ----------------------------------------------------------------------


def campaign_by_id(*, campaign_id: int) -> Campaign:
    campaign = campaigns_with_issued().filter(pk=campaign_id).first()
    if campaign is None:
        raise NotFound(f"No campaign {campaign_id}.")
    return campaign


def coupons_held_count(*, campaign_id: int) -> int:
    """Coupons of the campaign held by orders in flight: counted in coupon_held_idx, a partial
    index of held coupons only, so this stays cheap with millions of coupons issued."""
    return Coupon.objects.filter(campaign_id=campaign_id, status=Coupon.Status.RESERVED).count()


def campaign_by_slug(*, slug: str) -> Campaign | None:
    return Campaign.objects.filter(slug=slug).first()
