from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import URLValidator
from rest_framework import serializers

from infra.api import StrictCharField, StrictIntegerField, StrictSerializer, customer_id_field
from infra.contract import CUSTOMER_ID_RE
from infra.schema import QueueOut
from orders.models import Order, OrderLine
from orders.netguard import host_is_private

# An order body's limits, defined once: the serializers below and the hand-written check of
# the common body (order_place_plain) both read them. Lengths are the columns'.
MAX_ITEMS = 20  # lines in one order
MAX_QUANTITY = 99  # units of one line
MAX_SKU = OrderLine._meta.get_field("sku").max_length
MAX_CODE = Order._meta.get_field("coupon_code").max_length
MAX_URL = Order._meta.get_field("callback_url").max_length


class OrderItemIn(StrictSerializer):
    sku = StrictCharField(max_length=MAX_SKU)
    quantity = StrictIntegerField(min_value=1, max_value=MAX_QUANTITY)


class OrderPlaceIn(StrictSerializer):
    customer_id = customer_id_field()
    items = OrderItemIn(many=True, min_length=1, max_length=MAX_ITEMS, allow_empty=False)
    coupon_code = StrictCharField(
        required=False, allow_null=True, max_length=MAX_CODE, allow_blank=True
    )
    callback_url = StrictCharField(
        required=False, allow_null=True, max_length=MAX_URL, allow_blank=True
    )

    def validate_callback_url(self, value: str | None) -> str:
        return callback_url_vetted(value)


def callback_url_vetted(value: str | None) -> str:
    """The callback URL, or "" for none; raises a ValidationError unless it is https (or http
    where CALLBACK_ALLOW_HTTP) and, unless CALLBACK_ALLOW_PRIVATE, names a public host."""
    if not value:
        return ""
    return _url_vetted(value, settings.CALLBACK_ALLOW_HTTP, settings.CALLBACK_ALLOW_PRIVATE)


# A client sends the same few callback URLs with every order, and Django's URLValidator
# (built anew, its pattern compiled again) cost 4 % of an order POST's CPU: a URL that
# passed is remembered, with the settings it passed under. A refusal raises, so it is not
# (docs/performance.md, "The web layer on the hot endpoints").
@lru_cache(maxsize=1024)
def _url_vetted(value: str, allow_http: bool, allow_private: bool) -> str:
    allowed = ("https",) + (("http",) if allow_http else ())
    URLValidator(schemes=list(allowed), message="Must be an https URL.")(value)
    if not allow_private and _names_a_private_host(value):
        raise serializers.ValidationError("Must name a public host.")
    return value


def _names_a_private_host(url: str) -> bool:
    """localhost, or an IP literal in a private, loopback, link-local or reserved range: a
    callback there would make us send signed requests into our own network (SSRF). A name is
    checked again, resolved, each time a callback connects (orders.netguard)."""
    return host_is_private(urlsplit(url).hostname or "")


_PLACE_FIELDS = frozenset({"customer_id", "items", "coupon_code", "callback_url"})
_ITEM_FIELDS = frozenset({"sku", "quantity"})


def order_place_plain(data: object) -> dict[str, Any] | None:
    """The common, well-formed order checked by hand: what OrderPlaceIn would return for it,
    or None for anything else (then OrderPlaceIn judges it and explains what is wrong).

    Building a DRF serializer copies its fields for every request, which cost more than the
    rest of intake together; this accepts nothing OrderPlaceIn would refuse (plain ASCII
    strings within the same lengths, JSON integers in range, a callback URL that passes the
    same vetting)."""
    if not isinstance(data, dict) or not data.keys() <= _PLACE_FIELDS:
        return None
    customer_id, items, code = data.get("customer_id"), data.get("items"), data.get("coupon_code")
    plain = (
        isinstance(customer_id, str)
        and CUSTOMER_ID_RE.fullmatch(customer_id) is not None
        and isinstance(items, list)
        and 1 <= len(items) <= MAX_ITEMS
        and all(_plain_item(item) for item in items)
        and (code is None or _plain(code, MAX_CODE))
        and _plain_callback_url(data.get("callback_url"))
    )
    return data if plain else None


def _plain_callback_url(url: object) -> bool:
    if url is None or url == "":
        return True
    if not _plain(url, MAX_URL):
        return False
    try:
        callback_url_vetted(url)  # type: ignore[arg-type]
    except (DjangoValidationError, serializers.ValidationError):
        return False
    return True


def _plain_item(item: object) -> bool:
    if not isinstance(item, dict) or item.keys() != _ITEM_FIELDS:
        return False
    sku, quantity = item["sku"], item["quantity"]
    return (
        _plain(sku, MAX_SKU)
        and bool(sku)
        and type(quantity) is int
        and 1 <= quantity <= MAX_QUANTITY
    )


def _plain(value: object, max_length: int) -> bool:
    return (
        isinstance(value, str)
        and len(value) <= max_length
        and value.isascii()
        and value.isprintable()
        and value == value.strip()
    )


class OrderListIn(serializers.Serializer):
    customer_id = customer_id_field(required=False)
    cursor = serializers.CharField(required=False)


class OrderItemOut(serializers.Serializer):
    sku = serializers.CharField()
    quantity = serializers.IntegerField()
    unit_price = serializers.IntegerField(help_text="In fen.")


class OrderOut(serializers.Serializer):
    """Describes `orders.documents.order_document`, which renders it."""

    id = serializers.UUIDField()
    status = serializers.ChoiceField(choices=Order.Status.choices)
    reason = serializers.ChoiceField(choices=Order.Reason.choices, allow_null=True)
    customer_id = serializers.CharField()
    items = OrderItemOut(many=True)
    subtotal = serializers.IntegerField(help_text="In fen.")
    discount = serializers.IntegerField(help_text="In fen.")
    payable = serializers.IntegerField(help_text="In fen.")
    currency = serializers.CharField()
    coupon_code = serializers.CharField(allow_null=True)
    livemode = serializers.BooleanField(
        help_text="false: a test order, placed with a test key (cop_test_...), charged only at "
        "the test gateway; its callbacks carry it too (docs/integrator-guide.md, Test mode)."
    )
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    queue = QueueOut()


class OrderPageOut(serializers.Serializer):
    """A page of `GET /api/v1/orders/` (cursor pagination, newest first)."""

    next = serializers.URLField(allow_null=True, help_text="The next page, or null.")
    previous = serializers.URLField(allow_null=True, help_text="The previous page, or null.")
    results = OrderOut(many=True)
