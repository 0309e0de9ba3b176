from django.core.management.base import BaseCommand, CommandParser

from shop import services
from shop.models import ApiClient


class Command(BaseCommand):
    help = (
        "Issue an API key for the chatbot client NAME (created if new) and print it once. "
        "Only its hash is stored; older keys keep working until revoked in the admin."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="The chatbot client's name, e.g. 'acme-bot'.")
        parser.add_argument("--label", default="", help="A note on what this key is for.")
        parser.add_argument(
            "--test",
            action="store_true",
            help="A test key (cop_test_...): test products and campaigns only, charged at the "
            "test gateway (docs/integrator-guide.md, Test mode).",
        )

    def handle(self, *args: object, **options: object) -> None:
        client = ApiClient.objects.filter(name=options["name"]).first()
        if client is None:
            client = services.api_client_create(name=str(options["name"]))
            self.stderr.write(f"Created client {client.name!r}.")
        issued = services.api_key_issue(
            client_id=client.pk, label=str(options["label"]), livemode=not options["test"]
        )
        kind = "Test API key" if options["test"] else "API key"
        self.stderr.write(f"{kind} for {client.name!r} (shown once, store it now):")
        self.stdout.write(issued.raw)
