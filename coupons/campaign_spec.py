"""A campaign written down, as `coupons.services.campaign_load` takes it: plain values, already
validated (`coupons.campaign_file` parses and checks the file). No DRF here: services import
this, and they load before DRF's views do."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


class CampaignFileError(Exception):
    """The file cannot be loaded; `problems` are "<field path>: <sentence>" lines."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class StoreSpec:
    slug: str
    name: str


@dataclass(frozen=True)
class ProductSpec:
    sku: str
    name: str
    store: str
    price: int
    stock: int


@dataclass(frozen=True)
class CampaignSpec:
    slug: str
    name: str
    starts_at: datetime
    ends_at: datetime
    coupon_valid_until: datetime
    max_discount: int
    coupons_total: int
    budget_total: int
    per_customer_limit: int
    backlog_ceiling: int | None


@dataclass(frozen=True)
class CampaignFile:
    campaign: CampaignSpec
    stores: tuple[StoreSpec, ...]
    products: tuple[ProductSpec, ...]
