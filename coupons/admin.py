"""Admin for campaigns and coupons. Counters, money and status are read-only here: they move
only through coupons.services (claims, holds, `campaign_set_status`). The campaign page, which
shows the campaign's orders and line, is the layer above's: backoffice.admin registers a
subclass of CampaignAdmin with it in this one's place."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import admin, messages
from django.db.models import Q, QuerySet
from django.utils import timezone

from coupons import selectors, services
from coupons.models import Campaign, CampaignEvent, Coupon
from infra.admin import (
    EstimatedCountPaginator,
    ReadOnlyAdmin,
    ReadOnlyInline,
    SaveChangedFieldsOnly,
    yuan,
)
from infra.errors import DomainError

if TYPE_CHECKING:
    from django.forms import ModelForm
    from django.http import HttpRequest


class PublicStatusFilter(admin.SimpleListFilter):
    """The status the chatbot sees (docs/integrator-guide.md, Campaigns): staff's setting
    bounded by the time window, as `Campaign.status_at` computes it, in SQL."""

    title = "public status"
    parameter_name = "public_status"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return list(Campaign.PublicStatus.choices)

    def queryset(self, request: HttpRequest, queryset: QuerySet[Campaign]) -> QuerySet[Campaign]:
        now = timezone.now()
        ended = Q(status=Campaign.Status.ENDED) | Q(ends_at__lte=now)
        conditions = {
            Campaign.PublicStatus.ENDED: ended,
            Campaign.PublicStatus.PAUSED: Q(status=Campaign.Status.PAUSED) & ~ended,
            Campaign.PublicStatus.SCHEDULED: Q(status=Campaign.Status.ACTIVE, starts_at__gt=now)
            & ~ended,
            Campaign.PublicStatus.ACTIVE: Q(status=Campaign.Status.ACTIVE, starts_at__lte=now)
            & ~ended,
        }
        condition = conditions.get(self.value() or "")
        return queryset if condition is None else queryset.filter(condition)


class CampaignModeFilter(admin.SimpleListFilter):
    """Coupons of live or of test campaigns (docs/integrator-guide.md, Test mode), by the
    campaigns' ids: campaigns are few, and a join on the campaign's livemode walked every
    coupon from the newest down when none matched (a second or more at 3 million coupons)."""

    title = "campaign livemode"
    parameter_name = "campaign_livemode"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("1", "Yes"), ("0", "No")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Coupon]) -> QuerySet[Coupon]:
        if self.value() not in {"0", "1"}:
            return queryset
        campaigns = Campaign.objects.filter(livemode=self.value() == "1").values_list(
            "pk", flat=True
        )
        return queryset.filter(campaign_id__in=list(campaigns))


class CampaignEventInline(ReadOnlyInline):
    model = CampaignEvent
    fields = ["created_at", "source", "target", "actor", "data"]
    readonly_fields = fields
    ordering = ["id"]


# Set when the campaign is created, then moved only by services (coupons_issued: the sum of
# the campaign's coupon slices, annotated by get_queryset).
_COUNTERS = ["status", "coupons_issued", "budget_held", "budget_spent", "created_at", "updated_at"]
# Fixed at creation: raising a budget or a coupon count mid-campaign needs a service.
_TERMS = ["coupon_kind", "max_discount", "currency", "coupons_total", "budget_total", "livemode"]


@admin.register(Campaign)
class CampaignAdmin(SaveChangedFieldsOnly):
    list_display = [
        "slug",
        "name",
        "public_status",
        "window",
        "coupons",
        "budget",
        "per_customer_limit",
        "livemode",
    ]
    # Test campaigns (docs/integrator-guide.md, Test mode) can be filtered out.
    list_filter = ["livemode", PublicStatusFilter, "status"]
    search_fields = ["slug", "name"]
    ordering = ["-starts_at", "slug"]
    inlines = [CampaignEventInline]
    actions = ["pause", "resume", "end"]

    class Media:
        js = ["shop/admin/confirm_actions.js"]  # pause, resume and end ask before they act

    fieldsets = [
        (None, {"fields": ["slug", "name", "status", "livemode"]}),
        ("Window", {"fields": ["starts_at", "ends_at", "coupon_valid_until"]}),
        ("Coupons", {"fields": ["coupon_kind", "max_discount", "currency"]}),
        ("Limits", {"fields": ["per_customer_limit", "backlog_ceiling"]}),
        ("Stock and budget", {"fields": ["coupons_total", "coupons_issued", "budget_total"]}),
        ("Budget in use", {"fields": ["budget_held", "budget_spent"]}),
        ("Record", {"fields": ["created_at", "updated_at"]}),
    ]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Campaign]:
        return selectors.campaigns_with_issued(super().get_queryset(request))

    def get_readonly_fields(self, request: HttpRequest, obj: Campaign | None = None) -> list[str]:
        return list(_COUNTERS) if obj is None else [*_COUNTERS, *_TERMS]

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # coupons and orders PROTECT it; "End" is how a campaign stops

    def save_model(
        self, request: HttpRequest, obj: Campaign, form: ModelForm, change: bool
    ) -> None:
        """A new campaign is created as the form says, with its coupon slices, and audited
        (`campaign_create`); an edit goes through `campaign_update`, which writes only the
        changed columns (never the counters) and records the change, before and after, in the
        audit log."""
        if not change:
            created = services.campaign_create(
                **{name: getattr(obj, name) for name in services.CAMPAIGN_CREATE_FIELDS},
                actor=f"staff:{request.user.username}",
            )
            obj.pk = created.pk
            obj._state.adding = False
            return
        changes = {
            name: getattr(obj, name)
            for name in form.changed_data
            if name in services.CAMPAIGN_EDITABLE
        }
        if changes:
            services.campaign_update(
                campaign_id=obj.pk, changes=changes, actor=f"staff:{request.user.username}"
            )

    @admin.display(description="public status")
    def public_status(self, campaign: Campaign) -> str:
        return campaign.status_at(timezone.now())

    @admin.display(description="window", ordering="starts_at")
    def window(self, campaign: Campaign) -> str:
        start, end = timezone.localtime(campaign.starts_at), timezone.localtime(campaign.ends_at)
        return f"{start:%Y-%m-%d %H:%M} → {end:%Y-%m-%d %H:%M}"

    @admin.display(description="coupons issued / total")
    def coupons(self, campaign: Campaign) -> str:
        return f"{self.coupons_issued(campaign):,} / {campaign.coupons_total:,}"

    @admin.display(description="coupons issued")
    def coupons_issued(self, campaign: Campaign) -> int:
        """Annotated by get_queryset; 0 on the add form."""
        return int(getattr(campaign, "coupons_issued", 0))

    @admin.display(description="budget held / spent / total")
    def budget(self, campaign: Campaign) -> str:
        return " / ".join(
            yuan(v) for v in (campaign.budget_held, campaign.budget_spent, campaign.budget_total)
        )

    def _set_status(
        self, request: HttpRequest, queryset: QuerySet[Campaign], status: str, verb: str
    ) -> None:
        done: list[str] = []
        refused: list[str] = []
        for campaign in queryset.only("pk", "slug").order_by("pk"):
            try:
                services.campaign_status_change(
                    campaign_id=campaign.pk, status=status, actor=f"staff:{request.user.username}"
                )
            except DomainError as exc:
                refused.append(f"{campaign.slug}: {exc.detail}")
            else:
                done.append(campaign.slug)
        if done:
            self.message_user(request, f"{verb}: {', '.join(done)}.", messages.SUCCESS)
        if refused:
            self.message_user(request, f"Refused: {' '.join(refused)}", messages.ERROR)

    @admin.action(description="Pause", permissions=["change"])
    def pause(self, request: HttpRequest, queryset: QuerySet[Campaign]) -> None:
        """New claims and orders are refused; orders already in line wait until resumed."""
        self._set_status(request, queryset, Campaign.Status.PAUSED, "Paused")

    @admin.action(description="Resume", permissions=["change"])
    def resume(self, request: HttpRequest, queryset: QuerySet[Campaign]) -> None:
        self._set_status(request, queryset, Campaign.Status.ACTIVE, "Resumed")

    @admin.action(description="End", permissions=["change"])
    def end(self, request: HttpRequest, queryset: QuerySet[Campaign]) -> None:
        """For good: an ended campaign cannot be resumed."""
        self._set_status(request, queryset, Campaign.Status.ENDED, "Ended")


@admin.register(CampaignEvent)
class CampaignEventAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "campaign", "source", "target", "actor"]
    list_select_related = ["campaign"]
    list_filter = ["campaign", "target"]
    search_fields = ["actor", "campaign__slug"]
    ordering = ["-id"]


@admin.register(Coupon)
class CouponAdmin(ReadOnlyAdmin):
    list_display = ["code", "campaign", "customer_id", "status", "valid_until", "created_at"]
    list_select_related = ["campaign"]
    list_filter = [CampaignModeFilter, "status", "campaign"]
    search_fields = ["code", "customer_id"]
    search_help_text = "An exact coupon code or customer id."
    ordering = ["-id"]
    sortable_by: list[str] = []  # sorting millions of rows by an unindexed column: no
    show_full_result_count = False
    paginator = EstimatedCountPaginator
    fields = [
        "code",
        "campaign",
        "client",
        "customer_id",
        "slot",
        "status",
        "max_discount",
        "currency",
        "valid_until",
        "idempotency_key",
        "created_at",
        "updated_at",
    ]
    readonly_fields = fields

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Coupon], search_term: str
    ) -> tuple[QuerySet[Coupon], bool]:
        """Exact matches only, so that both use an index (the code is unique, the customer
        leads coupon_customer_idx); the default `icontains` scans every coupon."""
        term = search_term.strip()
        if not term:
            return queryset, False
        return queryset.filter(Q(code__in={term, term.upper()}) | Q(customer_id=term)), False
