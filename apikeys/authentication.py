"""DRF authentication with a `manage`-scoped API key (`Authorization: Bearer ctx_live_...`), accepted only while
the key's creator is an owner or admin of the key's organization."""

from __future__ import annotations

from typing import Any

from rest_framework import authentication, exceptions
from rest_framework.request import Request

from accounts.selectors import member_can_manage
from apikeys.keyformat import KeyShape, parse_key
from apikeys.models import ApiKey, KeyStatus, Scope


class ApiKeyPrincipal:
    """Who a key-authenticated request acts as: the key's organization, with the key's creator as the actor."""

    is_authenticated = True
    is_anonymous = False

    def __init__(self, key: ApiKey) -> None:
        self.key = key
        self.organization = key.organization
        self.actor = key.created_by
        self.pk = None

    def __str__(self) -> str:
        return f"API key {self.key.masked}"


class ApiKeyAuthentication(authentication.BaseAuthentication):
    keyword = "bearer"

    def authenticate(self, request: Request) -> tuple[Any, Any] | None:
        header = authentication.get_authorization_header(request).decode("latin-1")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != self.keyword or not token.strip():
            return None
        parsed = parse_key(token.strip())
        if parsed.shape is KeyShape.BAD_CHECKSUM:
            raise exceptions.AuthenticationFailed("This key has a typo: its checksum does not match. Copy it again.")
        if parsed.shape is not KeyShape.OK:
            raise exceptions.AuthenticationFailed("The API key is not valid.")
        key = ApiKey.objects.select_related("organization", "created_by").filter(digest=parsed.digest).first()
        if key is None:
            raise exceptions.AuthenticationFailed("The API key is not valid.")
        status = key.effective_status()
        if status != KeyStatus.ACTIVE:
            raise exceptions.AuthenticationFailed(f"This API key is {status}.")
        if Scope.MANAGE not in key.scopes:
            raise exceptions.PermissionDenied("This key lacks the manage scope needed for the management API.")
        # A key manages with at most its creator's rights as they are now, checked on every request: a demotion or
        # removal takes effect at once, even one made where the key cleanup does not run (the operator admin).
        if not member_can_manage(user_id=key.created_by_id, organization_id=key.organization_id):
            raise exceptions.PermissionDenied(
                "This key's management rights ended: the person who created it is no longer an owner or admin of "
                f"{key.organization.name}. An owner or admin can create a new manage key."
            )
        return ApiKeyPrincipal(key), key

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'
