"""A campaign written down: the file `manage.py campaign_load` reads (YAML or JSON).

    campaign: {slug, name, starts_at, ends_at, coupon_valid_until, max_discount, coupons_total,
               budget_total, per_customer_limit, backlog_ceiling}
    stores:   [{slug, name}, ...]
    products: [{sku, name, store, price, stock}, ...]

Money is integer fen; times carry a time zone; `stock` is the units put on sale in all (those
already sold included). Unknown keys are refused, so a typo never passes silently. Every
problem is reported with the path of its field (`products[2].price`).
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import rest_framework.views  # noqa: F401  (see below)
import yaml
from rest_framework import serializers

from coupons.campaign_spec import (
    CampaignFile,
    CampaignFileError,
    CampaignSpec,
    ProductSpec,
    StoreSpec,
)

# infra.api is normally first imported by DRF's own settings, while rest_framework.views
# loads; imported first from here (a management command), it would be asked for its parser
# before it is defined. Loading DRF's views above keeps the usual order.
from infra.api import StrictCharField, StrictIntegerField, StrictSerializer


class AwareDateTimeField(serializers.DateTimeField):
    """A moment with its time zone: "2026-12-01T00:00:00+08:00". A bare date or a time
    without a zone is refused rather than guessed."""

    def to_internal_value(self, value: object) -> datetime:
        if isinstance(value, datetime) and value.tzinfo is None:
            self.fail("naive")
        if isinstance(value, str):
            try:
                parsed = datetime.fromisoformat(value)
            except ValueError:
                parsed = None
            if parsed is not None and parsed.tzinfo is None:
                self.fail("naive")
        return super().to_internal_value(value)

    default_error_messages = {"naive": "Give the time zone, e.g. 2026-12-01T00:00:00+08:00."}


class StoreIn(StrictSerializer):
    slug = serializers.SlugField(max_length=64)
    name = StrictCharField(max_length=200)


class ProductIn(StrictSerializer):
    sku = StrictCharField(max_length=64)
    name = StrictCharField(max_length=200)
    store = serializers.SlugField(max_length=64)
    price = StrictIntegerField(min_value=0, help_text="Fen.")
    stock = StrictIntegerField(min_value=0, help_text="Units on sale in all, sold ones included.")


class CampaignIn(StrictSerializer):
    slug = serializers.SlugField(max_length=64)
    name = StrictCharField(max_length=200)
    starts_at = AwareDateTimeField()
    ends_at = AwareDateTimeField()
    coupon_valid_until = AwareDateTimeField()
    max_discount = StrictIntegerField(min_value=1, help_text="Fen.")
    coupons_total = StrictIntegerField(min_value=0)
    budget_total = StrictIntegerField(min_value=0, help_text="Fen.")
    per_customer_limit = StrictIntegerField(min_value=1, default=1)
    backlog_ceiling = StrictIntegerField(min_value=1, allow_null=True, default=None)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs["ends_at"] <= attrs["starts_at"]:
            raise serializers.ValidationError({"ends_at": ["Must be after starts_at."]})
        if attrs["coupon_valid_until"] <= attrs["starts_at"]:
            raise serializers.ValidationError({"coupon_valid_until": ["Must be after starts_at."]})
        return attrs


class CampaignFileIn(StrictSerializer):
    campaign = CampaignIn()
    stores = StoreIn(many=True, required=False, default=list)
    products = ProductIn(many=True, required=False, default=list)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        problems: dict[str, Any] = {}
        slugs = [s["slug"] for s in attrs["stores"]]
        if len(set(slugs)) != len(slugs):
            problems["stores"] = ["Each store slug may appear once."]
        skus = [p["sku"] for p in attrs["products"]]
        if len(set(skus)) != len(skus):
            problems["products"] = ["Each SKU may appear once."]
        if problems:
            raise serializers.ValidationError(problems)
        return attrs


def campaign_file_read(path: Path) -> CampaignFile:
    """Parse and validate a campaign file. Raises CampaignFileError with every problem."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CampaignFileError([f"{path}: cannot be read: {exc}"]) from exc
    return campaign_file_parse(text, json_only=path.suffix.lower() == ".json")


def campaign_file_parse(text: str, *, json_only: bool = False) -> CampaignFile:
    try:
        data = json.loads(text) if json_only else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise CampaignFileError(
            [f"(file): not valid {'JSON' if json_only else 'YAML'}: {exc}"]
        ) from exc
    serializer = CampaignFileIn(data=data)
    if not serializer.is_valid():
        raise CampaignFileError(_problems(serializer.errors))
    valid = serializer.validated_data
    return CampaignFile(
        campaign=CampaignSpec(**valid["campaign"]),
        stores=tuple(StoreSpec(**s) for s in valid["stores"]),
        products=tuple(ProductSpec(**p) for p in valid["products"]),
    )


def _problems(errors: object, path: str = "") -> list[str]:
    """DRF's nested errors as "<field path>: <sentence>" lines."""
    if isinstance(errors, dict):
        found = []
        for key, value in errors.items():
            if key == "non_field_errors":
                found += _problems(value, path)
            elif isinstance(key, int):  # an item of a list (DRF keys them by index)
                found += _problems(value, f"{path}[{key}]")
            else:
                found += _problems(value, f"{path}.{key}" if path else str(key))
        return found
    if isinstance(errors, list):
        if all(isinstance(e, str) for e in errors):
            return [f"{path or '(file)'}: {e}" for e in errors]
        found = []
        for index, value in enumerate(errors):
            found += _problems(value, f"{path}[{index}]")
        return found
    return [f"{path or '(file)'}: {errors}"]
