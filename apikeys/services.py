"""Issue, update, revoke and rotate API keys: the one implementation behind pages, REST API, admin and CLI.

Every change writes an audit event and, once committed, tells every gateway worker to drop its cached record
(`portal.invalidation`, retried through its outbox while Redis is away), so a revoked key stops working everywhere
within a second, or within a second of Redis coming back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from allauth.account.models import EmailAddress
from django.db import transaction
from django.utils import timezone

from accounts.audit import audit_record
from accounts.models import Organization, User
from apikeys import selectors
from apikeys.errors import ApiKeyError
from apikeys.keyformat import display_prefix, generate_key, key_digest, last_four
from apikeys.models import ApiKey, KeyStatus, Scope
from apikeys.records import record_cache_key
from billing.selectors import NoDefaultPlan, plan_snapshot_for_organization
from portal.invalidation import publish_on_commit

GRACE_PERIODS = {"none": timedelta(0), "1h": timedelta(hours=1), "24h": timedelta(hours=24)}
MAX_METADATA_ENTRIES = 20
MAX_METADATA_KEY = 40
MAX_METADATA_VALUE = 200
MAX_ALLOWED_MODELS = 50
MAX_KEY_RATE_LIMIT = 1_000_000  # when no plan applies
MAX_KEY_RATE_LIMIT_COLUMN = 2**31 - 1  # PostgreSQL integer: a larger value is a database error, not a limit


@dataclass(frozen=True)
class IssuedKey:
    """A key just created or rotated, with its secret: the only moment the secret exists outside the client."""

    key: ApiKey
    secret: str


def _clean_name(name: object) -> str:
    if not isinstance(name, str) or not name.strip():
        raise ApiKeyError("Give the key a name, such as the project or environment it is for.", field="name")
    name = name.strip()
    if len(name) > 100:
        raise ApiKeyError("The name can be at most 100 characters.", field="name")
    return name


def _clean_scopes(scopes: object) -> list[str]:
    if not isinstance(scopes, (list, tuple)) or not scopes:
        raise ApiKeyError("Choose at least one scope: inference or manage.", field="scopes")
    unknown = [scope for scope in scopes if scope not in Scope.values]
    if unknown:
        raise ApiKeyError(f"Unknown scope {unknown[0]!r}; use inference or manage.", field="scopes")
    return sorted(set(scopes))


def _clean_expiry(expires_at: object) -> datetime | None:
    if expires_at is None:
        return None
    if not isinstance(expires_at, datetime):
        raise ApiKeyError("The expiry must be a date and time.", field="expires_at")
    if expires_at <= timezone.now():
        raise ApiKeyError("The expiry must be in the future.", field="expires_at")
    return expires_at


def _clean_metadata(metadata: object) -> dict[str, str]:
    if metadata in (None, ""):
        return {}
    if not isinstance(metadata, dict):
        raise ApiKeyError('Metadata must be an object of text labels, e.g. {"env": "prod"}.', field="metadata")
    if len(metadata) > MAX_METADATA_ENTRIES:
        raise ApiKeyError(f"At most {MAX_METADATA_ENTRIES} metadata labels.", field="metadata")
    for name, value in metadata.items():
        if not isinstance(name, str) or not name or len(name) > MAX_METADATA_KEY:
            raise ApiKeyError(f"Label names are 1 to {MAX_METADATA_KEY} characters.", field="metadata")
        if not isinstance(value, str) or len(value) > MAX_METADATA_VALUE:
            raise ApiKeyError(
                f"Label {name!r} must be text of at most {MAX_METADATA_VALUE} characters.", field="metadata"
            )
    return dict(metadata)


def _clean_models(models: object) -> list[str]:
    if models in (None, ""):
        return []
    if not isinstance(models, (list, tuple)) or not all(isinstance(m, str) and m for m in models):
        raise ApiKeyError("Allowed models must be a list of model names.", field="allowed_models")
    if len(models) > MAX_ALLOWED_MODELS:
        raise ApiKeyError(f"At most {MAX_ALLOWED_MODELS} models.", field="allowed_models")
    return sorted(set(models))


def rate_limit_most(*, organization: Organization) -> tuple[int, str]:
    """The highest rate limit a key of `organization` may be given, and what sets it: the plan's limit per key (the
    gateway applies the lower of the two, so more would mean nothing), else a bound far inside the column's range."""
    try:
        plan = plan_snapshot_for_organization(organization_id=organization.pk)
    except NoDefaultPlan:
        return MAX_KEY_RATE_LIMIT, "the most a key can have"
    return min(plan.key_rate_requests, MAX_KEY_RATE_LIMIT_COLUMN), f"the {plan.name} plan's limit per key"


def _clean_rate_limit(rate_limit: object, *, organization: Organization) -> int | None:
    if rate_limit in (None, ""):
        return None
    most, reason = rate_limit_most(organization=organization)
    if isinstance(rate_limit, int) and not isinstance(rate_limit, bool) and 1 <= rate_limit <= most:
        return rate_limit
    raise ApiKeyError(
        f"The key's rate limit must be a whole number of requests from 1 to {most:,} ({reason}); "
        "leave it empty for the plan's limit.",
        field="rate_limit",
    )


def actor_may_issue(actor: User | None) -> bool:
    """Keys are issued to people who proved an email address or signed in with a wallet (CLI actors are None)."""
    if actor is None:
        return True
    if actor.wallets.exists():
        return True
    return EmailAddress.objects.filter(user=actor, verified=True).exists()


def _forget_cached(digest: str) -> None:
    """Once the change is committed, drop the shared cached record and tell every worker to drop its own: through
    the invalidation outbox, so a Redis outage at that moment delays this until Redis is back instead of leaving the
    old record in use for its whole TTL."""
    publish_on_commit("apikey", digest, drop_keys=[record_cache_key(digest)])


def apikey_issue(
    *,
    organization: Organization,
    actor: User | None,
    name: object,
    scopes: object = (Scope.INFERENCE,),
    expires_at: object = None,
    allowed_models: object = None,
    rate_limit: object = None,
    metadata: object = None,
    ip: str | None = None,
    creator: User | None = None,
    _rotated_from: ApiKey | None = None,
) -> IssuedKey:
    """`creator`: whose key it is when that is not the actor (the command line acts as no portal user): usage is
    attributed to them and a `manage` key manages only while they are an owner or admin. Default: the actor."""
    if not actor_may_issue(actor):
        raise ApiKeyError("Verify your email address before creating API keys; check your inbox for the link.")
    clean: dict[str, Any] = {
        "name": _clean_name(name),
        "scopes": _clean_scopes(scopes),
        "expires_at": _clean_expiry(expires_at),
        "allowed_models": _clean_models(allowed_models),
        # A rotated key keeps its limit even if the plan's is lower now: the gateway applies the lower one anyway.
        "rate_limit_requests": (
            _rotated_from.rate_limit_requests
            if _rotated_from is not None
            else _clean_rate_limit(rate_limit, organization=organization)
        ),
        "metadata": _clean_metadata(metadata),
    }
    secret = generate_key()
    with transaction.atomic():
        key = ApiKey.objects.create(
            organization=organization,
            created_by=creator or actor,
            digest=key_digest(secret),
            prefix=display_prefix(secret),
            last4=last_four(secret),
            rotated_from=_rotated_from,
            **clean,
        )
        audit_record(
            action="apikey.rotate" if _rotated_from else "apikey.issue",
            actor=actor,
            organization=organization,
            target=key.masked,
            data={"key_id": key.pk, "name": key.name, "scopes": key.scopes},
            ip=ip,
        )
    return IssuedKey(key=key, secret=secret)


def apikey_update(
    *,
    key: ApiKey,
    actor: User | None,
    ip: str | None = None,
    **changes: object,
) -> ApiKey:
    """Change a key's name, metadata, allowed models, rate limit, scopes or expiry (only the fields given)."""
    cleaners: dict[str, Callable[[Any], object]] = {
        "name": _clean_name,
        "metadata": _clean_metadata,
        "allowed_models": _clean_models,
        "rate_limit": partial(_clean_rate_limit, organization=key.organization),
        "scopes": _clean_scopes,
        "expires_at": _clean_expiry,
    }
    unknown = set(changes) - set(cleaners)
    if unknown:
        raise ApiKeyError(f"Unknown field {sorted(unknown)[0]!r}.", field=sorted(unknown)[0])
    if key.effective_status() != KeyStatus.ACTIVE:
        raise ApiKeyError("Only active keys can be changed.")
    fields = []
    for name, value in changes.items():
        attribute = "rate_limit_requests" if name == "rate_limit" else name
        setattr(key, attribute, cleaners[name](value))
        fields.append(attribute)
    if not fields:
        return key
    with transaction.atomic():
        key.save(update_fields=fields)
        audit_record(
            action="apikey.update",
            actor=actor,
            organization=key.organization,
            target=key.masked,
            data={"key_id": key.pk, "fields": sorted(fields)},
            ip=ip,
        )
        _forget_cached(key.digest)
    return key


def apikey_revoke(
    *, key: ApiKey, actor: User | None, ip: str | None = None, because: dict[str, str] | None = None
) -> ApiKey:
    """`because`: when the revoke follows from another change (a membership's), what it was, for the audit row."""
    with transaction.atomic():
        key = ApiKey.objects.select_for_update().get(pk=key.pk)
        if key.status == KeyStatus.REVOKED:
            return key
        key.status = KeyStatus.REVOKED
        key.revoked_at = timezone.now()
        key.revoked_by = actor
        key.save(update_fields=["status", "revoked_at", "revoked_by"])
        audit_record(
            action="apikey.revoke",
            actor=actor,
            organization=key.organization,
            target=key.masked,
            data={"key_id": key.pk, **(because or {})},
            ip=ip,
        )
        _forget_cached(key.digest)
    return key


def apikeys_end_management_rights(
    *, organization: Organization, user: User, actor: User | None, reason: str, ip: str | None = None
) -> int:
    """`user` can no longer manage `organization`: the keys they made for management stop managing. A key that
    only manages is revoked; one that also has other scopes (inference) loses `manage` and keeps the rest, because
    inference keys belong to the organization and its applications, not to the person. One audit row per key.
    Returns how many keys changed."""
    because = {"reason": reason, "creator": str(user)}
    with transaction.atomic():
        keys = list(selectors.apikeys_for_management(organization=organization, created_by=user).select_for_update())
        for key in keys:
            rest = [scope for scope in key.scopes if scope != Scope.MANAGE]
            if not rest:
                apikey_revoke(key=key, actor=actor, ip=ip, because=because)
                continue
            key.scopes = rest
            key.save(update_fields=["scopes"])
            audit_record(
                action="apikey.downgrade",
                actor=actor,
                organization=organization,
                target=key.masked,
                data={"key_id": key.pk, "removed_scopes": [Scope.MANAGE.value], "scopes": rest, **because},
                ip=ip,
            )
            _forget_cached(key.digest)
    return len(keys)


def apikey_rotate(*, key: ApiKey, actor: User | None, grace: str = "none", ip: str | None = None) -> IssuedKey:
    """A new secret with the same settings; the old one keeps working for the grace period, then expires."""
    if grace not in GRACE_PERIODS:
        raise ApiKeyError("The grace period must be none, 1h or 24h.", field="grace")
    with transaction.atomic():
        old = ApiKey.objects.select_for_update().get(pk=key.pk)
        if old.effective_status() != KeyStatus.ACTIVE:
            raise ApiKeyError("Only active keys can be rotated.")
        if hasattr(old, "rotated_to"):
            raise ApiKeyError("This key was already rotated; rotate its replacement instead.")
        issued = apikey_issue(
            organization=old.organization,
            actor=actor,
            name=old.name,
            scopes=old.scopes,
            expires_at=old.expires_at,
            allowed_models=old.allowed_models,
            metadata=old.metadata,
            ip=ip,
            _rotated_from=old,
        )
        old_until = timezone.now() + GRACE_PERIODS[grace]
        if old.expires_at is None or old.expires_at > old_until:
            old.expires_at = old_until
        if grace == "none":
            old.status = KeyStatus.EXPIRED
        old.save(update_fields=["expires_at", "status"])
        _forget_cached(old.digest)
    return issued


def apikeys_mark_expired(*, now: datetime | None = None) -> int:
    """Sweep: active keys past their expiry get the expired status (the gateway already refuses them)."""
    now = now or timezone.now()
    return ApiKey.objects.filter(status=KeyStatus.ACTIVE, expires_at__lte=now).update(status=KeyStatus.EXPIRED)


def apikey_touch_last_used(*, last_used: dict[int, datetime]) -> int:
    """Called by the usage pipeline with the newest use per key id; never moves last_used_at backwards."""
    updated = 0
    for key_id, when in last_used.items():
        updated += ApiKey.objects.filter(pk=key_id).exclude(last_used_at__gte=when).update(last_used_at=when)
    return updated
