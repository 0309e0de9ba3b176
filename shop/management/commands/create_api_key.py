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

    def handle(self, *args: object, **options: str) -> None:
        client = ApiClient.objects.filter(name=options["name"]).first()
        if client is None:
            client = services.api_client_create(name=options["name"])
            self.stderr.write(f"Created client {client.name!r}.")
        issued = services.api_key_issue(client_id=client.pk, label=options["label"])
        self.stderr.write(f"API key for {client.name!r} (shown once, store it now):")
        self.stdout.write(issued.raw)
