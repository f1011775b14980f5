"""Reads about API keys. Everything organization-scoped filters by organization first."""

from __future__ import annotations

from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from accounts.models import Organization, User
from apikeys.models import ApiKey, KeyStatus, Scope
from apikeys.records import KeyRecord


def apikeys_for_organization(*, organization: Organization) -> QuerySet[ApiKey]:
    return ApiKey.objects.filter(organization=organization).select_related("created_by")


def apikey_for_organization(*, organization: Organization, key_id: int) -> ApiKey | None:
    return ApiKey.objects.filter(organization=organization, pk=key_id).first()


def apikeys_for_management(*, organization: Organization, created_by: User | None = None) -> QuerySet[ApiKey]:
    """Keys of `organization` that can still call the management API (active, unexpired, `manage` scope), all of
    them or those `created_by` one person."""
    keys = ApiKey.objects.filter(
        Q(expires_at__isnull=True) | Q(expires_at__gt=timezone.now()),
        organization=organization,
        status=KeyStatus.ACTIVE,
        scopes__contains=[Scope.MANAGE],
    )
    return keys if created_by is None else keys.filter(created_by=created_by)


def apikeys_for_management_per_creator(*, organization: Organization) -> dict[int, int]:
    """How many such keys each member created: {user id: count}, members with none left out."""
    rows = (
        apikeys_for_management(organization=organization)
        .exclude(created_by=None)
        .order_by()
        .values("created_by_id")
        .annotate(count=Count("id"))
    )
    return {row["created_by_id"]: row["count"] for row in rows}


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
