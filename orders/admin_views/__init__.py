"""Orders' own admin pages: the backlog page and the controls, which ask for confirmation
before they act (replay of dead work, cancel, refund, resend callbacks). `common` is also
the campaign page's (backoffice.views): the permissions, labelled figures and the
confirmation page.

Thin: the figures come from orders.dashboard, every change from a service (which records it
in the audit log); each view checks the permission its role needs (the "campaign viewer" and
"campaign operator" groups, shop/migrations/0005_staff_roles.py). Mounted by orders.admin
(OrderAdmin.get_urls)."""

from orders.admin_views.backlog import backlog_page, replay
from orders.admin_views.callbacks import callbacks_resend_range
from orders.admin_views.order import order_control

__all__ = [
    "backlog_page",
    "callbacks_resend_range",
    "order_control",
    "replay",
]
