"""``manage.py gateway_check URL``: a payment gateway checked against docs/gateway-protocol.md."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from orders.gateway import contract_check

if TYPE_CHECKING:
    from argparse import ArgumentParser


class Command(BaseCommand):
    help = (
        "Check the payment gateway at URL against docs/gateway-protocol.md over real HTTP: "
        "charges, replays, look-ups, refunds, refusals and their error bodies. Prints one "
        "line per check (PASS, or FAIL and why); exits 0 only when all pass. It makes a few "
        "small charges for the customer `gateway-check` and refunds them, under references "
        "unique to the run: point it at a test gateway, never at one that moves real money."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("url", help="the gateway's base URL, as PAYMENT_GATEWAY_URL")
        parser.add_argument(
            "--key", default=None, help="the Bearer key (default settings.PAYMENT_GATEWAY_KEY)"
        )
        parser.add_argument(
            "--currency", default="CNY", help="ISO 4217 code to charge in (default CNY)"
        )
        parser.add_argument(
            "--timeout",
            type=float,
            default=None,
            help="seconds per request (default settings.PAYMENT_GATEWAY_TIMEOUT)",
        )

    def handle(self, *args: Any, **options: Any) -> None:  # Django's own signature
        results = contract_check.run_checks(
            options["url"],
            key=options["key"] or settings.PAYMENT_GATEWAY_KEY,
            timeout=options["timeout"] or settings.PAYMENT_GATEWAY_TIMEOUT,
            currency=options["currency"],
            report=self._report,
        )
        failed = [r.name for r in results if not r.passed]
        if failed:
            not_run = len(contract_check.CHECKS) - len(results)
            names = ", ".join(failed) + (f" ({not_run} more not run)" if not_run else "")
            raise CommandError(f"{len(failed)} of {len(results)} checks failed: {names}")
        self.stdout.write(f"all {len(results)} checks passed")

    def _report(self, result: contract_check.CheckResult) -> None:
        self.stdout.write(result.line())
        self.stdout.flush()
