"""The campaign admin staff use: coupons' own `CampaignAdmin` plus the campaign page.

coupons registers a complete admin for its campaigns (the record, its counters read-only, pause,
resume and end) without knowing orders. The campaign page shows the campaign's orders, line
and throughput, which are orders' figures, and coupons may not import orders (orders →
coupons → shop). So this app, above the three, puts the admin staff see in its place: a
subclass that adds the page's URLs, a link to it from the list and the change form, and the
backlog of the campaign's line on the change form. Django's admin holds one ModelAdmin per
model, hence unregister and register; coupons.admin is imported (and registered) before this
module runs, whatever the order of INSTALLED_APPS.

The admin's front page, which links pages of all three apps, is this app's too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import admin
from django.urls import path, reverse
from django.utils.html import format_html

from backoffice import views
from coupons.admin import CampaignAdmin
from coupons.models import Campaign
from orders import selectors as orders_selectors

if TYPE_CHECKING:
    from django.http import HttpRequest
    from django.urls import URLPattern


class CampaignPageAdmin(CampaignAdmin):
    change_form_template = "backoffice/admin/campaign_change_form.html"
    list_display = [*CampaignAdmin.list_display, "page_link"]
    # coupons' fieldsets, with the backlog of the campaign's line after its status
    fieldsets = [
        (None, {"fields": [*CampaignAdmin.fieldsets[0][1]["fields"], "backlog"]}),
        *CampaignAdmin.fieldsets[1:],
    ]

    def get_urls(self) -> list[URLPattern]:
        """The campaign page and its controls, ahead of the change view's catch-all."""
        view = self.admin_site.admin_view
        return [
            path(
                "<int:campaign_id>/dashboard/",
                view(views.campaign_page),
                name="coupons_campaign_dashboard",
            ),
            path(
                "<int:campaign_id>/limits/",
                view(views.campaign_limits),
                name="coupons_campaign_limits",
            ),
            path(
                "<int:campaign_id>/status/<str:verb>/",
                view(views.campaign_status),
                name="coupons_campaign_status",
            ),
            *super().get_urls(),
        ]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [*super().get_readonly_fields(request, obj), "backlog"]

    @admin.display(description="backlog")
    def backlog(self, campaign: Campaign) -> str:
        """On the change page only: it asks Redis (or counts), which a list must not do per row."""
        if campaign.pk is None:
            return "-"
        spot = orders_selectors.campaign_backlog(campaign_id=campaign.pk)
        return (
            f"{spot['orders_waiting']:,} orders waiting, "
            f"about {spot['estimated_wait_seconds']} s to clear"
        )

    @admin.display(description="live")
    def page_link(self, campaign: Campaign) -> str:
        url = reverse("admin:coupons_campaign_dashboard", args=[campaign.pk])
        return format_html('<a href="{}">Campaign page</a>', url)


admin.site.unregister(Campaign)
admin.site.register(Campaign, CampaignPageAdmin)
# The front page links the operations pages (campaign pages, backlog, audit log).
admin.site.index_template = "backoffice/admin/index.html"
