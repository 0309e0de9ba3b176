from django.apps import AppConfig


class InfraConfig(AppConfig):
    """The ground every app stands on: database and Redis helpers, rate limiting, the web
    worker, the API's envelope and errors, metrics, logs and health (docs/architecture.md)."""

    name = "infra"
    verbose_name = "Infrastructure"

    def ready(self) -> None:
        from django.db.backends.signals import connection_created  # noqa: PLC0415

        from infra.sql import read_timestamps_in_c, session_settings_check  # noqa: PLC0415

        connection_created.connect(read_timestamps_in_c, dispatch_uid="read_timestamps_in_c")
        connection_created.connect(session_settings_check, dispatch_uid="session_settings_check")
