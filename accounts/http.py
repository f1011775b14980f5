from __future__ import annotations

from accounts.models import User
from portal.http import HtmxHttpRequest


class AuthedRequest(HtmxHttpRequest):
    """The request type of views behind @login_required: `user` is a real user (and `htmx` is typed)."""

    user: User
