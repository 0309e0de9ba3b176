"""Admin glue shared by every app: read-only windows, saving only what the form changed, money
in yuan, and a count that does not scan big tables. Each app registers its own models in its
own admin.py; this module registers nothing and knows no app.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from django.contrib import admin
from django.core.paginator import Paginator
from django.db import connections
from django.db.models import QuerySet
from django.utils.functional import cached_property

from infra import sql

if TYPE_CHECKING:
    from django.db.models import Model
    from django.forms import ModelForm
    from django.http import HttpRequest


def yuan(fen: int) -> str:
    """Minor units as yuan for people, in integer arithmetic (money is never a float)."""
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(fen), 100)
    return f"{sign}¥{whole:,}.{cents:02d}"


class SaveChangedFieldsOnly(admin.ModelAdmin):
    """On change, write only the fields the form changed.

    A plain `save()` writes every column from the row read at the start of the request, so an
    edit of a product's name would put back the stock that orders took meanwhile (and a
    campaign edit its coupon and budget counters, a key's label edit an un-revoke). Counters
    change only through services' conditional UPDATEs; the admin must never overwrite them.
    """

    def save_model(self, request: HttpRequest, obj: Model, form: ModelForm, change: bool) -> None:
        if not change:
            super().save_model(request, obj, form, change)
            return
        columns = {f.name for f in obj._meta.concrete_fields}
        fields = [name for name in form.changed_data if name in columns]
        if fields and "updated_at" in columns:
            fields.append("updated_at")
        if fields:
            obj.save(update_fields=fields)


class EstimatedCountPaginator(Paginator):
    """Pagination for tables of millions of rows.

    The changelist counts its rows on every page. Unfiltered, that is a scan of the whole
    table, so the planner's estimate (`pg_class.reltuples`, kept by autovacuum) is used once
    the table is big; the last page may then come out short or empty. Filtered lists are
    counted exactly up to `exact_filtered_below` rows (counting stops there, so a filter that
    matches most of the table costs no more than that) and for at most `count_limit_ms`: a
    filter that matches few rows and no index serves (a rare status, a reason) would
    otherwise scan the whole table to find that there are no more. Past either, the planner's
    estimate of the filtered query is used, and staff see an approximate total.
    """

    exact_below = 100_000
    exact_filtered_below = 10_000
    count_limit_ms = 150

    @cached_property
    def count(self) -> int:
        object_list = self.object_list
        if not isinstance(object_list, QuerySet):
            return super().count
        if not object_list.query.where:
            with connections[object_list.db].cursor() as cursor:
                cursor.execute(
                    "SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass",
                    [object_list.model._meta.db_table],
                )
                row = cursor.fetchone()
            estimate = int(row[0]) if row else -1  # -1: never analysed
            if estimate >= self.exact_below:
                return estimate
            return super().count
        # Unordered, so that the planner may use whichever index serves the filter.
        cap = self.exact_filtered_below
        capped = object_list.order_by()[: cap + 1]
        counted = sql.within(self.count_limit_ms, capped.count)
        if counted is not None and counted <= cap:
            return counted
        return max(counted or 0, _planner_rows(object_list.order_by()))


def _planner_rows(queryset: QuerySet[Any]) -> int:
    """The planner's estimate of how many rows `queryset` returns (EXPLAIN, not run)."""
    plan = json.loads(queryset.explain(format="json"))
    return int(plan[0]["Plan"]["Plan Rows"])


class _ReadOnly:
    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ReadOnlyAdmin(_ReadOnly, admin.ModelAdmin):
    """Rows written by services only: staff look, never add, edit or delete."""


class ReadOnlyInline(_ReadOnly, admin.TabularInline):
    """Rows written by services only, shown on their parent's page: staff look, never change."""

    extra = 0
    can_delete = False
