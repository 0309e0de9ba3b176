"""Admin for the catalogue and the chatbot clients: a window onto state, writes go to services."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.contrib import admin, messages
from django.db import transaction
from django.db.models import Count, Q, QuerySet

from infra.admin import EstimatedCountPaginator, ReadOnlyAdmin, SaveChangedFieldsOnly, yuan
from infra.memo import copies_changed
from shop import services
from shop.models import (
    ApiClient,
    ApiKey,
    AuditEntry,
    Product,
    RateLimit,
    RateLimitChange,
    Store,
)

if TYPE_CHECKING:
    from django.forms import ModelForm
    from django.http import HttpRequest


class SuperuserOnly(admin.ModelAdmin):
    """API clients and keys grant access to the chatbot API: superusers only, whatever the
    permissions table says."""

    def has_module_permission(self, request: HttpRequest) -> bool:
        return request.user.is_superuser

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.is_superuser

    def has_add_permission(self, request: HttpRequest) -> bool:
        return request.user.is_superuser

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.is_superuser

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Orders and coupons PROTECT their client; a key is revoked, never deleted (a deleted
        # key leaves no trace of who held access).
        return False


# --- Catalogue -----------------------------------------------------------------------------


@admin.register(Store)
class StoreAdmin(SaveChangedFieldsOnly):
    list_display = ["slug", "name", "product_count", "created_at"]
    search_fields = ["slug", "name"]
    readonly_fields = ["created_at", "updated_at"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Store]:
        return super().get_queryset(request).annotate(product_count=Count("products"))

    @admin.display(description="products", ordering="product_count")
    def product_count(self, store: Store) -> int:
        return store.product_count  # type: ignore[attr-defined]


@admin.register(Product)
class ProductAdmin(SaveChangedFieldsOnly):
    list_display = [
        "sku",
        "name",
        "store",
        "price",
        "price_yuan",
        "stock",
        "stock_total",
        "livemode",
    ]
    list_select_related = ["store"]
    # Test products (docs/integrator-guide.md, Test mode) can be filtered out.
    list_filter = ["livemode", "store"]
    search_fields = ["sku", "name"]
    autocomplete_fields = ["store"]

    def get_readonly_fields(self, request: HttpRequest, obj: Product | None = None) -> list[str]:
        # Stock moves with every hold and release; after creation it changes only through
        # shop.services (stock_take, stock_return, stock_add).
        if obj is None:
            return ["created_at", "updated_at"]
        # A product's mode is fixed: a test product turned live would bring test holds along.
        return ["stock", "stock_total", "livemode", "created_at", "updated_at"]

    def save_model(self, request: HttpRequest, obj: Product, form: ModelForm, change: bool) -> None:
        """An edit (a price, a name) reaches intake's copies in every process within
        CACHE_VERSION_CHECK_SECONDS of its commit (infra/memo.py)."""
        super().save_model(request, obj, form, change)
        if change and form.changed_data:
            transaction.on_commit(copies_changed)

    @admin.display(description="price (yuan)", ordering="price")
    def price_yuan(self, product: Product) -> str:
        return yuan(product.price)


# --- API clients and keys ------------------------------------------------------------------


class ApiKeyInline(admin.TabularInline):
    model = ApiKey
    fields = ["prefix", "livemode", "label", "created_at", "revoked_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True
    ordering = ["-id"]

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return request.user.is_superuser

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # keys are issued by the action, which shows the key once

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(ApiClient)
class ApiClientAdmin(SuperuserOnly, SaveChangedFieldsOnly):
    list_display = ["name", "is_active", "live_key_count", "key_count", "created_at"]
    list_filter = ["is_active"]
    search_fields = ["name"]
    actions = [
        "issue_api_key",
        "issue_test_api_key",
        "rotate_webhook_secret",
        "replace_webhook_secret_now",
    ]

    def get_queryset(self, request: HttpRequest) -> QuerySet[ApiClient]:
        return (
            super()
            .get_queryset(request)
            .annotate(
                key_count=Count("keys"),
                live_key_count=Count("keys", filter=Q(keys__revoked_at__isnull=True)),
            )
        )

    def get_fields(self, request: HttpRequest, obj: ApiClient | None = None) -> list[str]:
        if obj is None:
            return ["name"]  # the webhook secret is generated by the service
        return [
            "name",
            "is_active",
            "webhook_secret",
            "webhook_secret_previous_until",
            "created_at",
            "updated_at",
        ]

    def get_readonly_fields(self, request: HttpRequest, obj: ApiClient | None = None) -> list[str]:
        if obj is None:
            return []
        return ["webhook_secret", "webhook_secret_previous_until", "created_at", "updated_at"]

    def get_inlines(self, request: HttpRequest, obj: ApiClient | None) -> list[type]:
        return [] if obj is None else [ApiKeyInline]

    def save_model(
        self, request: HttpRequest, obj: ApiClient, form: ModelForm, change: bool
    ) -> None:
        if change:
            super().save_model(request, obj, form, change)
            if "is_active" in form.changed_data:  # a deactivated client stops everywhere
                transaction.on_commit(copies_changed)
            return
        created = services.api_client_create(name=obj.name)
        # The admin goes on to log and redirect to `obj`: make it the row the service wrote.
        obj.pk, obj.webhook_secret = created.pk, created.webhook_secret
        obj.created_at, obj.updated_at = created.created_at, created.updated_at
        obj._state.adding = False

    @admin.display(description="keys", ordering="key_count")
    def key_count(self, client: ApiClient) -> int:
        return client.key_count  # type: ignore[attr-defined]

    @admin.display(description="live keys", ordering="live_key_count")
    def live_key_count(self, client: ApiClient) -> int:
        return client.live_key_count  # type: ignore[attr-defined]

    @admin.action(description="Issue a new API key", permissions=["change"])
    def issue_api_key(self, request: HttpRequest, queryset: QuerySet[ApiClient]) -> None:
        """Only the hash is stored, so this message is the one time anyone sees the key."""
        for client in queryset.order_by("pk"):
            issued = services.api_key_issue(
                client_id=client.pk, label=f"issued in admin by {request.user.username}"[:100]
            )
            self.message_user(
                request,
                f"New API key for {client.name} (shown once, store it now): {issued.raw}",
                messages.SUCCESS,
            )

    @admin.action(description="Issue a new test API key (cop_test_...)", permissions=["change"])
    def issue_test_api_key(self, request: HttpRequest, queryset: QuerySet[ApiClient]) -> None:
        """A test key reaches only test products and campaigns (docs/integrator-guide.md,
        Test mode); shown once, like a live one."""
        for client in queryset.order_by("pk"):
            issued = services.api_key_issue(
                client_id=client.pk,
                label=f"test key issued in admin by {request.user.username}"[:100],
                livemode=False,
            )
            self.message_user(
                request,
                f"New test API key for {client.name} (shown once, store it now): {issued.raw}",
                messages.SUCCESS,
            )

    @admin.action(
        description="Rotate the webhook secret (the old one signs too for a while)",
        permissions=["change"],
    )
    def rotate_webhook_secret(self, request: HttpRequest, queryset: QuerySet[ApiClient]) -> None:
        """Callbacks carry both signatures for WEBHOOK_SECRET_OVERLAP_HOURS: the chatbot
        deploys the new secret from the client's page meanwhile, without a gap."""
        overlap = timedelta(hours=settings.WEBHOOK_SECRET_OVERLAP_HOURS)
        self._rotate(request, queryset, overlap=overlap)

    @admin.action(
        description="Replace the webhook secret now (leaked: the old one stops at once)",
        permissions=["change"],
    )
    def replace_webhook_secret_now(
        self, request: HttpRequest, queryset: QuerySet[ApiClient]
    ) -> None:
        self._rotate(request, queryset, overlap=timedelta(0))

    def _rotate(
        self, request: HttpRequest, queryset: QuerySet[ApiClient], *, overlap: timedelta
    ) -> None:
        for client in queryset.order_by("pk"):
            rotated = services.webhook_secret_rotate(
                client_id=client.pk, overlap=overlap, actor=f"staff:{request.user.username}"
            )
            until = rotated.webhook_secret_previous_until
            old = (
                f"the old one signs too until {until:%Y-%m-%d %H:%M} UTC"
                if until
                else ("the old one no longer signs")
            )
            self.message_user(
                request,
                f"New webhook secret for {client.name}, shown on its page; {old}.",
                messages.SUCCESS,
            )


@admin.register(ApiKey)
class ApiKeyAdmin(SuperuserOnly, SaveChangedFieldsOnly):
    list_display = ["prefix", "client", "livemode", "label", "created_at", "revoked_at"]
    list_select_related = ["client"]
    list_filter = ["livemode", ("revoked_at", admin.EmptyFieldListFilter), "client"]
    search_fields = ["prefix", "label", "client__name"]
    # key_hash is left out on purpose: not editable, and of no use to a person.
    fields = ["client", "prefix", "livemode", "label", "created_at", "revoked_at", "updated_at"]
    readonly_fields = ["client", "prefix", "livemode", "created_at", "revoked_at", "updated_at"]
    actions = ["revoke"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # "Issue a new API key" on the client: the raw key must be shown once

    @admin.action(description="Revoke", permissions=["change"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        """Revoked keys answer 401 in every API process within CACHE_VERSION_CHECK_SECONDS."""
        prefixes = []
        for key in queryset.filter(revoked_at__isnull=True).order_by("pk"):
            services.api_key_revoke(key_id=key.pk)
            prefixes.append(key.prefix)
        if prefixes:
            self.message_user(request, f"Revoked: {', '.join(prefixes)}.", messages.SUCCESS)
        else:
            self.message_user(request, "Those keys were already revoked.", messages.INFO)


@admin.register(RateLimit)
class RateLimitAdmin(admin.ModelAdmin):
    """Limits staff change at run time; every process sees a change within seconds."""

    list_display = ["scope", "per_second", "burst", "updated_at"]
    fields = ["scope", "per_second", "burst"]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return ["scope"] if obj else []

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # an empty rate means unlimited; the row's history stays in its changes

    def save_model(self, request: HttpRequest, obj: RateLimit, form: Any, change: bool) -> None:
        saved = services.rate_limit_change(
            scope=obj.scope,
            per_second=obj.per_second,
            burst=obj.burst,
            actor=f"staff:{request.user.username}",
        )
        obj.pk = saved.pk


@admin.register(RateLimitChange)
class RateLimitChangeAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "scope", "before", "after", "actor"]
    list_filter = ["scope"]


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdmin):
    """The staff controls' audit log: who, when, what, before and after. Append-only: written
    by the control services, never by hand."""

    list_display = [
        "created_at",
        "actor",
        "action",
        "target_type",
        "target_repr",
        "before",
        "after",
    ]
    list_filter = ["action", "target_type"]
    search_fields = ["=actor", "=target_id", "=target_repr"]
    search_help_text = "An exact actor (staff:<username>), target id, or order/campaign."
    ordering = ["-id"]
    sortable_by: list[str] = []
    show_full_result_count = False
    paginator = EstimatedCountPaginator
