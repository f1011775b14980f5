"""The gateway's one upstream HTTP client per worker (aiohttp: see DESIGN.md "Measured facts").

Explicit pool limits and timeouts from settings: connect (nothing sent yet: safe to retry elsewhere), first byte /
between reads (`sock_read`), and a total budget the caller enforces around the whole exchange.
"""

from __future__ import annotations

import aiohttp
from django.conf import settings


class UpstreamClient:
    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=settings.GATEWAY_UPSTREAM_POOL_SIZE,
                limit_per_host=settings.GATEWAY_UPSTREAM_POOL_SIZE,
                ttl_dns_cache=300,
                keepalive_timeout=30,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                auto_decompress=True,
                skip_auto_headers=("User-Agent",),
                raise_for_status=False,
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None


def request_timeout() -> aiohttp.ClientTimeout:
    """Per request, so a changed setting applies without a restart. `sock_read` bounds the wait for the first byte
    and for each later read; the total budget is enforced by the caller around the whole exchange."""
    return aiohttp.ClientTimeout(
        total=None, sock_connect=settings.GATEWAY_CONNECT_TIMEOUT, sock_read=settings.GATEWAY_FIRST_BYTE_TIMEOUT
    )
