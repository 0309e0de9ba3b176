from django.apps import AppConfig


class ShopConfig(AppConfig):
    name = "shop"
    verbose_name = "Shop: stores, products and chatbot clients"

    def ready(self) -> None:
        # Every app's reads go through this: shop is the one every other app builds on.
        from django.db.backends.signals import connection_created  # noqa: PLC0415

        from config.sql import read_timestamps_in_c, session_settings_check  # noqa: PLC0415

        connection_created.connect(read_timestamps_in_c, dispatch_uid="read_timestamps_in_c")
        connection_created.connect(session_settings_check, dispatch_uid="session_settings_check")
