"""The gateway's upstream client, configured from settings: the client itself (portal/netclients/http1.py) takes
plain parameters; this module reads the `GATEWAY_*` settings for it, once per worker for the pool and on every
request (cached, portal.settings_cache) for the timeouts."""

from __future__ import annotations

from django.conf import settings

from portal.netclients.http1 import HTTP1Client, Timeouts
from portal.settings_cache import SettingsCache

_TIMEOUTS = SettingsCache(
    lambda: Timeouts(
        float(settings.GATEWAY_CONNECT_TIMEOUT),
        float(settings.GATEWAY_FIRST_BYTE_TIMEOUT),
        float(settings.GATEWAY_TOTAL_TIMEOUT),
    )
)


def request_timeouts() -> Timeouts:
    return _TIMEOUTS.get()


def upstream_client() -> HTTP1Client:
    """The worker's one upstream client: pool size, idle keep-alive and the private CA (if any) from settings."""
    return HTTP1Client(
        pool_size=int(settings.GATEWAY_UPSTREAM_POOL_SIZE),
        keepalive_seconds=float(settings.GATEWAY_UPSTREAM_KEEPALIVE_SECONDS),
        ca_file=settings.GATEWAY_UPSTREAM_CA_FILE or None,
    )
