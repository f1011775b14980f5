"""The gateway's one upstream HTTP client per worker (aiohttp: see DESIGN.md "Measured facts").

Explicit pool limits and timeouts from settings: connect (nothing sent yet: safe to retry elsewhere), first byte /
between reads (`sock_read`), and a total budget for the whole exchange.
"""

from __future__ import annotations

import aiohttp
from django.conf import settings
from yarl import URL


class UpstreamClient:
    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None
        self._urls: dict[str, URL] = {}

    def url(self, text: str) -> URL:
        """Target URLs parsed once: a target's URL does not change per request, and aiohttp would parse it each time."""
        url = self._urls.get(text)
        if url is None:
            if len(self._urls) > 10_000:  # bounded: targets come and go with the catalog
                self._urls.clear()
            url = self._urls[text] = URL(text)
        return url

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(
                limit=settings.GATEWAY_UPSTREAM_POOL_SIZE,
                limit_per_host=settings.GATEWAY_UPSTREAM_POOL_SIZE,
                ttl_dns_cache=300,
                keepalive_timeout=settings.GATEWAY_UPSTREAM_KEEPALIVE_SECONDS,
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


_timeouts: dict[tuple[float, float, float], aiohttp.ClientTimeout] = {}


def request_timeout() -> aiohttp.ClientTimeout:
    """Looked up per request, so a changed setting applies without a restart (and made once per distinct value:
    building one showed in profiles). `sock_connect` bounds reaching the target (nothing sent yet: safe to retry
    elsewhere); `sock_read` the wait for the first byte and for each later read; `total` the whole exchange,
    streamed answers included."""
    values = (
        float(settings.GATEWAY_CONNECT_TIMEOUT),
        float(settings.GATEWAY_FIRST_BYTE_TIMEOUT),
        float(settings.GATEWAY_TOTAL_TIMEOUT),
    )
    timeout = _timeouts.get(values)
    if timeout is None:
        timeout = _timeouts[values] = aiohttp.ClientTimeout(
            total=values[2], sock_connect=values[0], sock_read=values[1]
        )
    return timeout
