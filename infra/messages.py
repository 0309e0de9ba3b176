"""Every `detail` the API can answer, as gettext message ids, so that a shopper reads it in
their language (Accept-Language: English or Simplified Chinese; infra/locale/). The error
codes never change; only the sentence does.

Details are written in English where the rule is (domain errors, some with values in them:
"Only 3 of TM-TEA left."). `detail_translate` finds the message id a sentence was made from,
exactly or by its %(name)s template, and answers the translation with the same values. So
the code that raises stays plain and fast, and translating happens only when an error is
rendered, in the exception handler. A new sentence is added to DETAILS (a test fails for a
domain error whose default is missing), then `manage.py makemessages -l zh_Hans` and
`compilemessages`; the compiled .mo files are committed.
"""

from __future__ import annotations

import re
from functools import cache

from django.utils.translation import get_language, gettext
from django.utils.translation import gettext_noop as _

DETAILS: list[str] = [
    # infra/errors.py
    _("The request could not be completed."),
    _("Not found."),
    _("%(entity)s cannot move from %(current)s to %(target)s."),
    _("This Idempotency-Key was already used with a different request body."),
    _("The request is not valid."),
    # coupons
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
    # shop
    _("Not enough stock."),
    _("This product is sold out."),
    _("%(sku)s is sold out."),
    _("Only %(left)s of %(sku)s left."),
    _("Product %(id)s has fewer than %(units)s units left."),
    # orders
    _("The order can no longer be cancelled."),
    _("The order is %(status)s."),
    _("A payment for this order is in progress."),
    _("Too many orders are waiting for this campaign; retry later."),
    _("No such order."),
    _("Only a paid order can be refunded."),
    _("The order has no settled charge to refund."),
    _("The gateway refused the refund; nothing was refunded."),
    _("The gateway refused the refund: %(error)s"),
    _(
        "The gateway gave no definite answer; the refund may have happened. Try again: "
        "the same idempotency key is sent, so the charge is never refunded twice."
    ),
    # infra/api.py and shop/api/authentication.py
    _("Something went wrong on our side."),
    _("Too many requests; retry later."),
    _("The service cannot take this request right now; retry shortly."),
    _("No such endpoint."),
    _("The request could not be understood."),
    _("Forbidden."),
    _("Use 'Authorization: Bearer <api key>'."),
    _("The API key is not valid."),
    _("The API key is not valid or was revoked."),
]

_PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def _template(msgid: str) -> re.Pattern[str]:
    parts = _PLACEHOLDER.split(msgid)  # text, name, text, name, ..., text
    regex = "".join(
        re.escape(part) if i % 2 == 0 else f"(?P<{part}>.+?)" for i, part in enumerate(parts)
    )
    return re.compile(regex)


@cache
def _catalogue() -> tuple[frozenset[str], tuple[tuple[re.Pattern[str], str], ...]]:
    exact = frozenset(d for d in DETAILS if "%(" not in d)
    templates = tuple((_template(d), d) for d in DETAILS if "%(" in d)
    return exact, templates


def detail_translate(detail: str) -> str:
    """The detail in the active language (English: as it is; unknown: as it is)."""
    language = get_language() or "en"
    if language.startswith("en"):
        return detail
    exact, templates = _catalogue()
    if detail in exact:
        return gettext(detail)
    for regex, msgid in templates:
        match = regex.fullmatch(detail)
        if match:
            return gettext(msgid) % match.groupdict()
    return gettext(detail)  # a sentence DRF or Django translate themselves
