"""The coupons app's sentences (campaigns and coupons): every `detail` its errors can
answer, as gettext message ids. infra.messages gathers every app's DETAILS; the
translations are in coupons/locale/.
"""

from django.utils.translation import gettext_noop as _

DETAILS: list[str] = [
    _("The campaign is not taking claims or orders now."),
    _("All coupons of this campaign have been issued."),
    _("The customer already holds as many coupons of this campaign as allowed."),
    _("The campaign's budget is spent."),
    _("The campaign has not spent that much budget."),
    _("%(count)s coupon(s) were not %(state)s."),
    _("An ended campaign cannot be reopened."),
    _("A limit is out of range."),
    _("No campaign '%(slug)s'."),
    _("No campaign %(id)s."),
]
