"""The staff admin's own pages: a campaign's page, the backlog page, and the controls, which
ask for confirmation before they act (pause and resume, limits, replay of dead work, cancel,
refund, resend callbacks).

Thin: the figures come from orders.dashboard, every change from a service (which records it
in the audit log); each view checks the permission its role needs (the "campaign viewer" and
"campaign operator" groups, shop/migrations/0005_staff_roles.py). Charts are SVG drawn here,
on the server: no script or stylesheet from anywhere but our own static files. Mounted by
orders.admin (OrderAdmin.get_urls, and CampaignPage.urls on coupons' campaign admin).
"""

from orders.admin_views.backlog import backlog_page, replay
from orders.admin_views.callbacks import callbacks_resend_range
from orders.admin_views.campaign import campaign_limits, campaign_page, campaign_status
from orders.admin_views.order import order_control

__all__ = [
    "backlog_page",
    "callbacks_resend_range",
    "campaign_limits",
    "campaign_page",
    "campaign_status",
    "order_control",
    "replay",
]
