from django.apps import AppConfig


class PortalConfig(AppConfig):
    """Site-level pieces that belong to no single domain app: the demo data command, the invalidation outbox."""

    name = "portal"
    verbose_name = "Portal"
