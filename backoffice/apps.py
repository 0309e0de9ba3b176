from django.apps import AppConfig


class BackofficeConfig(AppConfig):
    """The campaign as a whole, above the three apps (docs/architecture.md): coupons' campaign
    joined with orders' line and figures. The staff's campaign page and its controls, the
    chatbot's campaign documents, and the admin front page. No models."""

    name = "backoffice"
    verbose_name = "Back office: the campaign page"
