"""Catalogue (stores, products with stock) and the chatbot clients that sell through them.

API clients live here, at the bottom of the dependency chain (orders → coupons → shop),
because both coupons and orders belong to the client that created them.
"""

from django.db import models
from django.db.models import Q
from django.utils import timezone


class Store(models.Model):
    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return self.name


class Product(models.Model):
    """A SKU. `stock` is the units still available; holds and sales have taken the rest."""

    sku = models.CharField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    store = models.ForeignKey(Store, on_delete=models.PROTECT, related_name="products")
    price = models.PositiveBigIntegerField(help_text="Unit price in fen.")
    currency = models.CharField(max_length=3, default="CNY")
    stock = models.BigIntegerField(default=0, help_text="Units available to hold.")
    stock_total = models.BigIntegerField(default=0, help_text="Units ever put on sale.")
    # Test products are what test keys order: their stock is their own, so a test order never
    # moves live stock (docs/integrator-guide.md, Test mode).
    livemode = models.BooleanField(
        default=True, db_default=True, help_text="Off: a test product, for test keys only."
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["sku"]
        constraints = [
            # Overselling is impossible even if the Python is wrong.
            models.CheckConstraint(condition=Q(stock__gte=0), name="product_stock_not_negative"),
            models.CheckConstraint(
                condition=Q(stock__lte=models.F("stock_total")), name="product_stock_within_total"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.sku} ({self.name})"


class ApiClient(models.Model):
    """A chatbot platform calling the API. Holds one or more keys, and its webhook secret."""

    name = models.CharField(max_length=100, unique=True)
    webhook_secret = models.CharField(max_length=128)
    # The secret rotated out: it still signs callbacks, beside the new one, until the time
    # given (shop.services.webhook_secret_rotate), so the chatbot switches without a gap.
    webhook_secret_previous = models.CharField(max_length=128, blank=True, db_default="")
    webhook_secret_previous_until = models.DateTimeField(null=True, blank=True)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return self.name

    # The authenticated principal of an API request (DRF's IsAuthenticated asks this).
    is_authenticated = True


class ApiKey(models.Model):
    """Only the SHA-256 of a key is stored; the key itself is shown once, at creation.

    A fast hash is right here: keys are 256-bit random, so there is nothing to brute-force.
    """

    client = models.ForeignKey(ApiClient, on_delete=models.CASCADE, related_name="keys")
    prefix = models.CharField(max_length=16, help_text="First characters, to tell keys apart.")
    key_hash = models.CharField(max_length=64, unique=True)
    label = models.CharField(max_length=100, blank=True)
    # A test key (`cop_test_...`) sees and orders only test products and campaigns, and its
    # orders are charged at the test gateway (docs/integrator-guide.md, Test mode). Its
    # prefix says so too; the lookup checks that both agree.
    livemode = models.BooleanField(default=True, db_default=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.client})"

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None


class RateLimit(models.Model):
    """A limit staff change at run time, in the admin. Every API and worker process re-reads
    it within RATE_LIMIT_CACHE_SECONDS: no restart. Absent rows use RATE_LIMIT_DEFAULTS.

    Here, at the bottom of the dependency chain, because both the API's admission control
    (coupons, orders) and the workers' outbound limits (orders) read it.
    """

    class Scope(models.TextChoices):
        GATEWAY = "gateway", "Payment gateway requests/s (all workers together)"
        CALLBACKS = "callbacks", "Callback POSTs/s, per chatbot client"
        CLIENT_REQUESTS = "client_requests", "API claims and orders/s, per chatbot client"
        CUSTOMER_REQUESTS = "customer_requests", "API claims and orders/s, per customer"

    scope = models.CharField(max_length=32, choices=Scope.choices, unique=True)
    per_second = models.FloatField(null=True, blank=True, help_text="Empty: unlimited. 0: stopped.")
    burst = models.PositiveIntegerField(default=1, help_text="Tokens that may be spent at once.")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(per_second__isnull=True) | Q(per_second__gte=0),
                name="rate_limit_not_negative",
            ),
        ]

    def __str__(self) -> str:
        rate = "unlimited" if self.per_second is None else f"{self.per_second:g}/s"
        return f"{self.scope}: {rate}, burst {self.burst}"


class RateLimitChange(models.Model):
    """Append-only: who changed which limit, from what to what."""

    scope = models.CharField(max_length=32)
    before = models.JSONField(default=dict)
    after = models.JSONField(default=dict)
    actor = models.CharField(max_length=150)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    def __str__(self) -> str:
        return f"{self.scope} by {self.actor} at {self.created_at:%Y-%m-%d %H:%M:%S}"


class AuditEntry(models.Model):
    """Append-only: a staff control used in the admin (pause, limits, replay, cancel, refund):
    who, when, what, and the state before and after.

    Here, at the bottom of the dependency chain, so that coupons' and orders' control services
    can record in the same transaction as the change they make. Targets are named by kind and
    id, not by foreign key, for the same reason (and an entry outlives what it names).
    """

    actor = models.CharField(max_length=150, help_text="staff:<username>")
    action = models.CharField(max_length=64, help_text="For example campaign.pause.")
    target_type = models.CharField(max_length=32)
    target_id = models.CharField(max_length=64, blank=True, default="")
    target_repr = models.CharField(max_length=200, blank=True, default="")
    before = models.JSONField(default=dict, blank=True)
    after = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        verbose_name_plural = "audit entries"
        indexes = [
            # A campaign's (or an order's) own history, newest first, on its page.
            models.Index(fields=["target_type", "target_id", "-id"], name="audit_target_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.action} on {self.target_type} {self.target_id} by {self.actor}"
