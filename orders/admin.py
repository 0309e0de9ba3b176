"""Admin for orders and their pipeline: read-only windows onto state, sized for tables of
millions of rows. Staff never write an order, hold, payment or event by hand; they use the
controls (cancel, refund, replay of dead work), which call `orders.services` and are recorded
in the audit log. The backlog page and the controls' confirmation pages are in
`orders.admin_views`, mounted here; the campaign page is backoffice's (backoffice.admin).

Big tables: no full-table counts (`show_full_result_count = False`, an estimated count for
unfiltered lists, a capped one for filtered lists), no per-row queries (`list_select_related`,
no computed columns that query), exact searches that use an index, and sorting only by the
primary key.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from django.contrib import admin, messages
from django.db.models import Q, QuerySet
from django.urls import path
from django.utils.text import Truncator

from infra.admin import EstimatedCountPaginator, ReadOnlyAdmin, ReadOnlyInline
from infra.errors import DomainError
from orders import admin_views, selectors, services
from orders.models import (
    REFUNDABLE,
    CallbackDelivery,
    Order,
    OrderEvent,
    OrderLine,
    Payment,
    Reservation,
    cancel_refusal,
)
from shop.models import ApiClient

if TYPE_CHECKING:
    from django.http import HttpRequest, HttpResponse
    from django.urls import URLPattern

# One admin request cancels at most this many orders: each is its own transaction.
CANCEL_LIMIT = 200


def _as_uuid(term: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(term)
    except ValueError:
        return None


class BigTableAdmin(ReadOnlyAdmin):
    ordering = ["-id"]
    sortable_by: list[str] = []  # sorting millions of rows by an unindexed column: no
    show_full_result_count = False
    paginator = EstimatedCountPaginator

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Any], search_term: str
    ) -> tuple[QuerySet[Any], bool]:
        """By the order's public id, exactly (unique index). Django's own `=public_id` casts
        the uuid to text, which no index serves."""
        term = search_term.strip()
        if not term:
            return queryset, False
        public_id = _as_uuid(term)
        return (
            queryset.filter(order__public_id=public_id) if public_id else queryset.none()
        ), False


class OrderLineInline(ReadOnlyInline):
    model = OrderLine
    fields = ["product", "sku", "quantity", "unit_price"]
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[OrderLine]:
        return super().get_queryset(request).select_related("product").order_by("id")


class OrderEventInline(ReadOnlyInline):
    model = OrderEvent
    fields = ["created_at", "source", "target", "actor", "data"]
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[OrderEvent]:
        return super().get_queryset(request).order_by("id")


class ReservationInline(ReadOnlyInline):
    model = Reservation
    fields = ["campaign", "coupon", "discount", "expires_at", "closed_at", "outcome"]
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[Reservation]:
        return super().get_queryset(request).select_related("campaign", "coupon")


class PaymentInline(ReadOnlyInline):
    model = Payment
    fields = [
        "status",
        "amount",
        "attempts",
        "charge_id",
        "next_attempt_at",
        "last_error",
        "idempotency_key",
    ]
    readonly_fields = fields


class CallbackDeliveryInline(ReadOnlyInline):
    model = CallbackDelivery
    fields = [
        "order_status",
        "state",
        "attempts",
        "next_attempt_at",
        "delivered_at",
        "last_error",
        "url",
    ]
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[CallbackDelivery]:
        return super().get_queryset(request).order_by("id")


class ParkedFilter(admin.SimpleListFilter):
    """Orders taken out of their line because their batch kept failing (dead work)."""

    title = "parked"
    parameter_name = "parked"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "Parked")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Order]) -> QuerySet[Order]:
        if self.value() == "yes":
            return queryset.filter(parked_at__isnull=False)
        return queryset


@admin.register(Order)
class OrderAdmin(BigTableAdmin):
    list_display = [
        "public_id",
        "customer_id",
        "client",
        "campaign",
        "status",
        "reason",
        "subtotal",
        "discount",
        "payable",
        "livemode",
        "created_at",
        "updated_at",
    ]
    list_select_related = ["client", "campaign"]
    # Test orders (docs/integrator-guide.md, Test mode) can be filtered out.
    list_filter = ["livemode", "status", "reason", ParkedFilter, "campaign", "client"]
    search_fields = ["public_id", "customer_id", "idempotency_key"]
    search_help_text = "An exact order id, customer id or Idempotency-Key."
    date_hierarchy = None  # it counts every month and day: a full scan per page
    fields = [
        "public_id",
        "client",
        "customer_id",
        "campaign",
        "coupon",
        "coupon_code",
        "status",
        "reason",
        "subtotal",
        "discount",
        "payable",
        "currency",
        "callback_url",
        "idempotency_key",
        "request_hash",
        "queue_ticket",
        "parked_at",
        "park_reason",
        "created_at",
        "updated_at",
    ]
    readonly_fields = fields
    inlines = [
        OrderLineInline,
        OrderEventInline,
        ReservationInline,
        PaymentInline,
        CallbackDeliveryInline,
    ]
    actions = ["cancel", "unpark", "resend_callbacks"]
    change_list_template = "orders/admin/order_change_list.html"
    change_form_template = "orders/admin/order_change_form.html"

    class Media:
        js = ["shop/admin/confirm_actions.js"]  # the actions ask before they act

    def get_urls(self) -> list[URLPattern]:
        """The backlog page and the confirmed controls, ahead of the change view's catch-all."""
        view = self.admin_site.admin_view
        return [
            path("backlog/", view(admin_views.backlog_page), name="orders_order_backlog"),
            path(
                "backlog/replay/<str:kind>/",
                view(admin_views.replay),
                name="orders_order_replay",
            ),
            path(
                "callbacks/resend/",
                view(admin_views.callbacks_resend_range),
                name="orders_order_resend_callbacks",
            ),
            *(
                path(
                    f"<int:order_id>/{verb}/",
                    view(admin_views.order_control),
                    {"verb": verb},
                    name=f"orders_order_{verb}",
                )
                for verb in ("cancel", "refund", "resend")
            ),
            *super().get_urls(),
        ]

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        """The page offers Cancel, Refund and Resend callback (each asks for confirmation) to
        staff who may."""
        order = self.get_object(request, object_id)
        allowed = order is not None and request.user.has_perm("orders.change_order")
        payment = selectors.payments_by_order([order.pk]).get(order.pk) if allowed else None
        extra = {
            "can_cancel": allowed
            and not cancel_refusal(order.status, payment.status if payment else None),
            "can_refund": allowed and order.status in REFUNDABLE,
            "can_resend": allowed and bool(order.callback_url),
            **(extra_context or {}),
        }
        return super().change_view(request, object_id, form_url, extra)

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Order], search_term: str
    ) -> tuple[QuerySet[Order], bool]:
        """Exact matches that an index serves: the public id is unique; customer id and key
        follow the client in order_customer_idx and order_placed_once, so the few client ids
        are put in front (`client_id = ANY(...)` walks those indexes once per client)."""
        term = search_term.strip()
        if not term:
            return queryset, False
        public_id = _as_uuid(term)
        if public_id is not None:
            return queryset.filter(public_id=public_id), False
        clients = list(ApiClient.objects.values_list("pk", flat=True))
        return queryset.filter(
            Q(client_id__in=clients, customer_id=term)
            | Q(client_id__in=clients, idempotency_key=term)
        ), False

    def has_cancel_permission(self, request: HttpRequest) -> bool:
        """The change form stays read-only for everyone; cancelling is what `change` allows."""
        return request.user.has_perm("orders.change_order")

    def has_unpark_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("orders.change_order")

    def has_resend_callbacks_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("orders.change_order")

    @admin.action(
        description="Resend the latest callback (same event, new delivery)",
        permissions=["resend_callbacks"],
    )
    def resend_callbacks(self, request: HttpRequest, queryset: QuerySet[Order]) -> None:
        """Each selected order's latest status POSTed again (`staff_callbacks_resend`); those
        still on their way, or without callbacks, are left as they are."""
        ids = list(queryset.values_list("pk", flat=True)[:CANCEL_LIMIT])
        resent = services.staff_callbacks_resend(
            order_ids=ids, actor=f"staff:{request.user.username}"
        )
        self.message_user(request, f"{len(resent)} callback(s) queued to be sent again.")

    @admin.action(description="Return parked orders to their line", permissions=["unpark"])
    def unpark(self, request: HttpRequest, queryset: QuerySet[Order]) -> None:
        ids = list(queryset.filter(parked_at__isnull=False).values_list("pk", flat=True)[:1000])
        count = services.staff_orders_unpark(order_ids=ids, actor=f"staff:{request.user.username}")
        self.message_user(request, f"{count} parked order(s) returned to their line.")

    @admin.action(description="Cancel (release holds)", permissions=["cancel"])
    def cancel(self, request: HttpRequest, queryset: QuerySet[Order]) -> None:
        """Each order through `order_cancel`, in its own transaction: the service decides what
        may be cancelled (not paid, no charge in flight) and gives the holds back."""
        selected = list(
            queryset.select_related(None)
            .order_by("pk")
            .only("pk", "public_id", "client_id", "status")[: CANCEL_LIMIT + 1]
        )
        if len(selected) > CANCEL_LIMIT:
            self.message_user(
                request,
                f"Select at most {CANCEL_LIMIT} orders to cancel at once. Nothing was cancelled.",
                messages.ERROR,
            )
            return
        actor = f"staff:{request.user.username}"
        cancelled: list[str] = []
        already: list[str] = []
        refused: list[str] = []
        for order in selected:
            try:
                services.staff_order_cancel(order_id=order.pk, actor=actor)
            except DomainError as exc:
                refused.append(f"{order.public_id}: {exc.detail}")
                continue
            # The service returns an already-cancelled order unchanged; say so.
            (already if order.status == Order.Status.CANCELLED else cancelled).append(
                str(order.public_id)
            )
        if cancelled:
            self.message_user(request, f"Cancelled: {', '.join(cancelled)}.", messages.SUCCESS)
        if already:
            self.message_user(request, f"Already cancelled: {', '.join(already)}.", messages.INFO)
        if refused:
            self.message_user(request, f"Not cancelled: {' '.join(refused)}", messages.ERROR)


@admin.register(Payment)
class PaymentAdmin(BigTableAdmin):
    actions = ["replay"]

    class Media:
        js = ["shop/admin/confirm_actions.js"]

    def has_replay_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("orders.change_order")

    @admin.action(
        description="Replay parked payments (ask the gateway first)", permissions=["replay"]
    )
    def replay(self, request: HttpRequest, queryset: QuerySet[Payment]) -> None:
        order_ids = list(
            queryset.filter(status=Payment.Status.PARKED).values_list("order_id", flat=True)[:1000]
        )
        count = services.staff_payments_replay(
            order_ids=order_ids, actor=f"staff:{request.user.username}"
        )
        self.message_user(request, f"{count} parked payment(s) replayed.")

    list_display = [
        "order",
        "status",
        "amount",
        "attempts",
        "charge_id",
        "next_attempt_at",
        "last_error_short",
    ]
    list_select_related = ["order"]
    list_filter = ["status"]
    search_fields = ["order__public_id"]
    search_help_text = "An exact order id."
    raw_id_fields = ["order"]

    @admin.display(description="last error")
    def last_error_short(self, payment: Payment) -> str:
        return Truncator(payment.last_error).chars(60)


@admin.register(CallbackDelivery)
class CallbackDeliveryAdmin(BigTableAdmin):
    actions = ["replay"]

    class Media:
        js = ["shop/admin/confirm_actions.js"]

    def has_replay_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("orders.change_order")

    @admin.action(description="Replay failed deliveries", permissions=["replay"])
    def replay(self, request: HttpRequest, queryset: QuerySet[CallbackDelivery]) -> None:
        ids = list(
            queryset.filter(state=CallbackDelivery.State.FAILED).values_list("pk", flat=True)[:1000]
        )
        count = services.staff_callbacks_replay(
            delivery_ids=ids, actor=f"staff:{request.user.username}"
        )
        self.message_user(request, f"{count} failed deliver(ies) replayed.")

    list_display = [
        "order",
        "order_status",
        "state",
        "attempts",
        "next_attempt_at",
        "last_error_short",
    ]
    list_select_related = ["order"]
    list_filter = ["state"]
    search_fields = ["order__public_id"]
    search_help_text = "An exact order id."
    raw_id_fields = ["order"]

    @admin.display(description="last error")
    def last_error_short(self, delivery: CallbackDelivery) -> str:
        return Truncator(delivery.last_error).chars(60)


@admin.register(OrderEvent)
class OrderEventAdmin(BigTableAdmin):
    list_display = ["created_at", "order", "source", "target", "actor"]
    list_select_related = ["order"]
    search_fields = ["order__public_id"]
    search_help_text = "An exact order id."
    raw_id_fields = ["order"]


@admin.register(Reservation)
class ReservationAdmin(BigTableAdmin):
    list_display = [
        "order",
        "campaign",
        "coupon",
        "discount",
        "expires_at",
        "closed_at",
        "outcome",
    ]
    list_select_related = ["order", "campaign", "coupon"]
    list_filter = ["outcome"]
    search_fields = ["order__public_id"]
    search_help_text = "An exact order id."
    raw_id_fields = ["order", "campaign", "coupon"]
