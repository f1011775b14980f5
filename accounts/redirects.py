"""Where to send a browser after signing in or switching organization: the `next` it asked for, if that stays here.

Every `next` the portal reads goes through `safe_next_url` (allauth's own pages too, via the adapter's
`is_safe_url`). A prefix check such as `startswith("/")` is not enough: browsers read `/\\evil.example/` as
`//evil.example/`, another site, and ignore tabs and newlines inside a URL. Django's
`url_has_allowed_host_and_scheme` knows these tricks; this module only fixes the hosts and the scheme it allows.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest
from django.utils.http import url_has_allowed_host_and_scheme

MAX_LENGTH = 2000  # longer than any page of ours; a huge value is refused rather than echoed


def is_safe_next_url(request: HttpRequest, url: object) -> bool:
    """True when `url` leads to this site as the browser reached it: a local path, or an absolute URL naming this
    host (over HTTPS when the request came over HTTPS or in production)."""
    if not isinstance(url, str) or not url or len(url) > MAX_LENGTH:
        return False
    return url_has_allowed_host_and_scheme(
        url,
        allowed_hosts={request.get_host()},
        require_https=request.is_secure() or settings.PRODUCTION,
    )


def safe_next_url(request: HttpRequest, url: object, *, default: str = "/") -> str:
    """`url` when it is safe to redirect to, else `default`."""
    return url if isinstance(url, str) and is_safe_next_url(request, url) else default
