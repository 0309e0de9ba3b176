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
    revoked_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.client})"

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None
