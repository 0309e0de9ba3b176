from django.apps import AppConfig


class OrdersConfig(AppConfig):
    name = "orders"
    verbose_name = "Orders: orders, holds, payments and callbacks"

    def ready(self) -> None:
        # Registers the scrape-time collector of queues, lines and campaigns with /metrics.
        from orders import metrics  # noqa: F401, PLC0415
