from datetime import timedelta

from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction
from django.utils import timezone

from coupons import services
from coupons.models import Campaign
from shop import services as shop_services
from shop.models import ApiClient, Product, Store

STORES = {
    "tea-house": (
        "Tea House",
        [("TM-MILKTEA-L", "Milk tea, large", 1800), ("TM-FRUITTEA", "Fruit tea", 1500)],
    ),
    "burger-bar": (
        "Burger Bar",
        [("BB-CLASSIC", "Classic burger", 3200), ("BB-FRIES", "Fries", 900)],
    ),
    "noodle-shop": (
        "Noodle Shop",
        [("NS-BEEF", "Beef noodles", 2600), ("NS-DUMPLING", "Dumplings x12", 2200)],
    ),
}


# Test mode (docs/integrator-guide.md): the same products under a TEST- SKU and the same
# campaign under its own slug, seen and ordered only by test keys.
TEST_SKU_PREFIX = "TEST-"
TEST_CAMPAIGN = "spring-free-order-test"


class Command(BaseCommand):
    help = (
        "Create the demo 'spring-free-order' campaign (free order up to 25 yuan, one coupon "
        "per customer), three stores with products in stock, their test-mode twins (campaign "
        f"{TEST_CAMPAIGN!r}, SKUs {TEST_SKU_PREFIX}...), and the 'demo-chatbot' client; print "
        "a new API key for it (and, with --test-key, a test key on the next line). Safe to "
        "run again: existing rows are kept."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--stock", type=int, default=1_000_000, help="Units per product.")
        parser.add_argument(
            "--coupons", type=int, default=1_000_000, help="Coupons in the campaign."
        )
        parser.add_argument("--no-key", action="store_true", help="Do not issue a new API key.")
        parser.add_argument(
            "--test-key",
            action="store_true",
            help="Also issue a test key (cop_test_...), printed on the line after the live one.",
        )

    @transaction.atomic
    def handle(self, *args: object, **options: object) -> None:
        now = timezone.now()
        for slug, (name, products) in STORES.items():
            store, _ = Store.objects.get_or_create(slug=slug, defaults={"name": name})
            for sku, title, price in products:
                stock = int(options["stock"])  # type: ignore[call-overload]
                for prefix, livemode in (("", True), (TEST_SKU_PREFIX, False)):
                    Product.objects.get_or_create(
                        sku=f"{prefix}{sku}",
                        defaults={
                            "name": title,
                            "store": store,
                            "price": price,
                            "stock": stock,
                            "stock_total": stock,
                            "livemode": livemode,
                        },
                    )
        for slug, name, livemode in (
            ("spring-free-order", "Spring free order", True),
            (TEST_CAMPAIGN, "Spring free order (test mode)", False),
        ):
            campaign = Campaign.objects.filter(slug=slug).first()
            created = campaign is None
            if campaign is None:
                campaign = services.campaign_seed(
                    slug=slug,
                    name=name,
                    starts_at=now - timedelta(minutes=1),
                    ends_at=now + timedelta(days=30),
                    coupon_valid_until=now + timedelta(days=30),
                    max_discount=2500,
                    per_customer_limit=1,
                    coupons_total=int(options["coupons"]),  # type: ignore[call-overload]
                    budget_total=300_000_000_000,
                    livemode=livemode,
                )
            self.stderr.write(
                f"Campaign {campaign.slug!r} {'created' if created else 'already there'}."
            )
        client = ApiClient.objects.filter(
            name="demo-chatbot"
        ).first() or shop_services.api_client_create(name="demo-chatbot")
        if not options["no_key"]:
            issued = shop_services.api_key_issue(client_id=client.pk, label="seed_demo")
            self.stderr.write("API key for 'demo-chatbot' (shown once):")
            self.stdout.write(issued.raw)
            if options["test_key"]:
                issued = shop_services.api_key_issue(
                    client_id=client.pk, label="seed_demo (test mode)", livemode=False
                )
                self.stderr.write("Test API key for 'demo-chatbot' (shown once):")
                self.stdout.write(issued.raw)
