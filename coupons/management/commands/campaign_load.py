from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from coupons.campaign_file import campaign_file_read
from coupons.campaign_spec import CampaignFileError
from coupons.services import campaign_load


class Command(BaseCommand):
    help = (
        "Load a campaign written down in FILE (YAML, or JSON for a .json file; see "
        "docs/campaign.example.yaml): its window, coupons, budget, maximum discount, "
        "per-customer limit, backlog ceiling, and the stores and products with their stock. "
        "Loading the same file again changes nothing; a changed file updates what may still "
        "change and refuses, naming the field, what may not. All or nothing; each change is "
        "recorded in the audit log."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path, help="The campaign file.")
        parser.add_argument(
            "--dry-run", action="store_true", help="Check and show the changes; keep none."
        )
        parser.add_argument(
            "--actor",
            default="campaign_load",
            help="Who the audit log names (default: %(default)s).",
        )

    def handle(self, *args: object, **options: object) -> None:
        path = options["file"]
        assert isinstance(path, Path)  # noqa: S101 (argparse's type)
        try:
            document = campaign_file_read(path)
            with transaction.atomic():
                done = campaign_load(document=document, actor=str(options["actor"]))
                if options["dry_run"]:
                    transaction.set_rollback(True)
        except CampaignFileError as exc:
            raise CommandError(
                f"{path} was not loaded; nothing changed:\n  " + "\n  ".join(exc.problems)
            ) from exc
        slug = document.campaign.slug
        if not done:
            self.stdout.write(
                f"{path}: campaign {slug} is already as the file says; nothing changed."
            )
            return
        verb = "would change (dry run, nothing kept)" if options["dry_run"] else "loaded"
        self.stdout.write(f"{path}: {verb}:")
        for line in done:
            self.stdout.write(f"  {line}")
