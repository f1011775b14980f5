from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "billing"
    verbose_name = "Billing"

    def ready(self) -> None:
        from accounts.hooks import register_account_events_handler
        from billing.starting_plan import HANDLER

        register_account_events_handler(HANDLER)
