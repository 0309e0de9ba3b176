"""`python manage.py callback_schedule [--write]`: the callbacks' retry schedule as the table
in docs/integrator-guide.md, from `retry_schedule` with the settings in force (run it with the
defaults: no CALLBACK_RETRY_* in the environment). --write puts it in the guide;
tests/orders/test_callback_schedule.py fails when the guide's table is stale."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from devtools.callback_schedule import table, write
from orders.services.callbacks import retry_schedule


def schedule_table() -> str:
    return table(retry_schedule(), passing_delay=settings.CALLBACK_PASSING_DELAY_SECONDS)


class Command(BaseCommand):
    help = "Print the callbacks' retry schedule table, or --write it into the integrator guide."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--write", action="store_true", help="rewrite the guide's table")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["write"]:
            write(schedule_table())
            self.stdout.write("docs/integrator-guide.md: retry schedule written")
        else:
            self.stdout.write(schedule_table())
