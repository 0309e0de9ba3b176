"""The shop app's sentences (stock and API keys): every `detail` its errors can
answer, as gettext message ids. infra.messages gathers every app's DETAILS; the
translations are in shop/locale/.
"""

from django.utils.translation import gettext_noop as _

DETAILS: list[str] = [
    _("Not enough stock."),
    _("This product is sold out."),
    _("%(sku)s is sold out."),
    _("Only %(left)s of %(sku)s left."),
    _("Product %(id)s has fewer than %(units)s units left."),
    _("Use 'Authorization: Bearer <api key>'."),
    _("The API key is not valid."),
    _("The API key is not valid or was revoked."),
]
