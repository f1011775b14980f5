"""The one ASGI application production serves: `/v1` goes to the gateway, everything else to Django.

The gateway is a raw ASGI app rather than a Django view because Django's request handler costs a thread hand-off per
request (docs/performance.md). Lifespan events are handled here: Django has no lifespan support, the gateway
uses startup/shutdown to open and close its upstream connection pool.
"""

from __future__ import annotations

import os
from typing import Any

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

django_application = get_asgi_application()

from gateway.app import application as gateway_application  # noqa: E402  (needs configured settings)

Scope = dict[str, Any]


def is_gateway_path(path: str) -> bool:
    """/v1 (the inference API) and /metrics (the gateway's Prometheus metrics, behind an operator token)."""
    return path == "/v1" or path.startswith("/v1/") or path == "/metrics"


async def application(scope: Scope, receive: Any, send: Any) -> None:
    kind = scope["type"]
    if kind == "lifespan" or (kind == "http" and is_gateway_path(scope["path"])):
        await gateway_application(scope, receive, send)
    else:
        await django_application(scope, receive, send)
