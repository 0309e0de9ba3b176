"""``manage.py run_sandbox_gateway``: the sandbox payment gateway, from Django."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

import sandbox_gateway as sandbox

if TYPE_CHECKING:
    from argparse import ArgumentParser


class Command(BaseCommand):
    help = (
        "Run the sandbox payment gateway (/v1/charges, /v1/refunds) with "
        "settable latency, decline and error rates, dropped answers and a requests-per-second "
        "quota; it runs until SIGTERM or Ctrl-C. Same options as "
        "`python -m sandbox_gateway`. The key defaults to settings.PAYMENT_GATEWAY_KEY, "
        "so the settlement worker can talk to it unchanged."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        sandbox.add_arguments(parser)
        # The key the worker sends; the environment alone may not hold it (e.g. an env file).
        parser.set_defaults(key=settings.PAYMENT_GATEWAY_KEY)

    def handle(self, *args: Any, **options: Any) -> None:  # Django's own signature
        try:
            config = sandbox.config_from_options(options)
        except sandbox.InvalidInputError as exc:
            raise CommandError(str(exc)) from exc
        sandbox.run(
            host=options["host"],
            port=options["port"],
            key=options["key"],
            config=config,
            announce=self._announce,
        )

    def _announce(self, line: str) -> None:
        self.stdout.write(line)
        # Supervisors and tests wait for this line; don't let a pipe buffer hold it back.
        self.stdout.flush()
