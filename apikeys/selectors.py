"""Reads about API keys. Everything organization-scoped filters by organization first."""

from __future__ import annotations

from django.db.models import QuerySet

from accounts.models import Organization
from apikeys.models import ApiKey
from apikeys.records import KeyRecord


def apikeys_for_organization(*, organization: Organization) -> QuerySet[ApiKey]:
    return ApiKey.objects.filter(organization=organization).select_related("created_by")


def apikey_for_organization(*, organization: Organization, key_id: int) -> ApiKey | None:
    return ApiKey.objects.filter(organization=organization, pk=key_id).first()


def _record(key: ApiKey) -> KeyRecord:
    return KeyRecord(
        id=key.pk,
        organization_id=key.organization_id,
        created_by_id=key.created_by_id,
        status=str(key.status),
        expires_at_ms=int(key.expires_at.timestamp() * 1000) if key.expires_at else None,
        scopes=tuple(key.scopes),
        allowed_models=tuple(key.allowed_models),
        rate_limit_requests=key.rate_limit_requests,
    )


def apikey_record_by_digest(*, digest: str) -> KeyRecord | None:
    key = ApiKey.objects.filter(digest=digest).first()
    return None if key is None else _record(key)


async def apikey_record_by_digest_async(*, digest: str) -> KeyRecord | None:
    key = await ApiKey.objects.filter(digest=digest).afirst()
    return None if key is None else _record(key)
