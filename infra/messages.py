"""Every `detail` the API can answer, as gettext message ids, so that a shopper reads it in
their language (Accept-Language: English or Simplified Chinese). The error codes never
change; only the sentence does. Each app keeps its own catalogue: its sentences in its
messages.py (DETAILS, below for the API's own) and their translations in its locale/;
`details()` gathers them from every installed app.

Details are written in English where the rule is (domain errors, some with values in them:
"Only 3 of TM-TEA left."). `detail_translate` finds the message id a sentence was made from,
exactly or by its %(name)s template, and answers the translation with the same values. So
the code that raises stays plain and fast, and translating happens only when an error is
rendered, in the exception handler. A new sentence is added to its app's DETAILS (a test fails
for a domain error whose default is missing), then `manage.py makemessages -l zh_Hans` in
that app's folder and `compilemessages`; the compiled .mo files are committed.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import import_module

from django.apps import apps
from django.utils.module_loading import module_has_submodule
from django.utils.translation import get_language, gettext
from django.utils.translation import gettext_noop as _

DETAILS: list[str] = [
    _("The request could not be completed."),
    _("Not found."),
    _("%(entity)s cannot move from %(current)s to %(target)s."),
    _("This Idempotency-Key was already used with a different request body."),
    _("The request is not valid."),
    _("Something went wrong on our side."),
    _("Too many requests; retry later."),
    _("The service cannot take this request right now; retry shortly."),
    _("No such endpoint."),
    _("The request could not be understood."),
    _("Forbidden."),
]

_PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def _template(msgid: str) -> re.Pattern[str]:
    parts = _PLACEHOLDER.split(msgid)  # text, name, text, name, ..., text
    regex = "".join(
        re.escape(part) if i % 2 == 0 else f"(?P<{part}>.+?)" for i, part in enumerate(parts)
    )
    return re.compile(regex)


@cache
def details() -> tuple[str, ...]:
    """Every app's sentences: this module's DETAILS and each installed app's messages.DETAILS."""
    found = list(DETAILS)
    for app in apps.get_app_configs():
        if app.name != __package__ and module_has_submodule(app.module, "messages"):
            found.extend(import_module(f"{app.name}.messages").DETAILS)
    return tuple(found)


@cache
def _catalogue() -> tuple[frozenset[str], tuple[tuple[re.Pattern[str], str], ...]]:
    exact = frozenset(d for d in details() if "%(" not in d)
    templates = tuple((_template(d), d) for d in details() if "%(" in d)
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
