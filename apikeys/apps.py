from django.apps import AppConfig


class ApikeysConfig(AppConfig):
    name = "apikeys"
    verbose_name = "API keys"

    def ready(self) -> None:
        from accounts.hooks import register_manager_rights_handler
        from apikeys import schema  # noqa: F401  (registers the OpenAPI authentication extension)
        from apikeys.membership import management_keys

        # A member who stops managing an organization takes the management rights of their keys with them.
        register_manager_rights_handler(management_keys)
