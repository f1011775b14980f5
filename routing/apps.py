from django.apps import AppConfig


class RoutingConfig(AppConfig):
    name = "routing"
    verbose_name = "Routing"

    def ready(self) -> None:
        from portal.health import register_readiness_check
        from routing.readiness import check_pools

        register_readiness_check(check_pools)
