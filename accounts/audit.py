"""Writing audit events: the one entry point every service uses."""

from __future__ import annotations

from typing import Any

from accounts.models import AuditEvent, Organization, User


def audit_record(
    *,
    action: str,
    actor: User | None,
    organization: Organization | None = None,
    target: str = "",
    data: dict[str, Any] | None = None,
    ip: str | None = None,
) -> AuditEvent:
    """Append one audit event. `action` is a dotted verb such as `apikey.revoke`; `data` must hold no secrets."""
    return AuditEvent.objects.create(
        action=action,
        actor=actor if actor is not None and actor.pk else None,
        organization=organization,
        target=target[:200],
        data=data or {},
        ip=ip,
    )
