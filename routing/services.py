"""Changing routing state: operator actions on targets, admin edits, and recording active probes.

Every change that alters what the gateway may route to publishes a "routing" invalidation once committed, so
every gateway worker reloads its routing table within a second; operator changes also write an audit event.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Sequence

from django.conf import settings
from django.db import DatabaseError, transaction
from django.utils import timezone

from accounts.audit import audit_record
from accounts.models import User
from portal.invalidation import publish_on_commit
from routing.models import HealthStatus, ModelAlias, RouterPool, RouterTarget
from routing.probe import ProbeResult, ProbeTarget, probe_targets_http

RoutingObject = RouterPool | RouterTarget | ModelAlias
TOPIC = "routing"
log = logging.getLogger(__name__)

_KINDS: dict[type, str] = {RouterPool: "pool", RouterTarget: "target", ModelAlias: "alias"}


def routing_changed() -> None:
    """Tell the gateway workers to reload the routing table once the current transaction commits."""
    publish_on_commit(TOPIC, "")


def _label(obj: RoutingObject) -> str:
    """How audit events name it: a pool's slug, `pool/target`, an alias."""
    return obj.slug if isinstance(obj, RouterPool) else str(obj)


def _record(*, action: str, obj: RoutingObject, actor: User | None, ip: str | None, data: dict[str, object]) -> None:
    audit_record(action=f"routing.{_KINDS[type(obj)]}.{action}", actor=actor, target=_label(obj), data=data, ip=ip)
    routing_changed()


@transaction.atomic
def routing_object_save(
    *, obj: RoutingObject, actor: User | None, ip: str | None = None, changed: Sequence[str] = ()
) -> None:
    """Validate and save a pool, target or alias edited by an operator (admin), audit it and invalidate."""
    creating = obj.pk is None
    obj.full_clean()
    obj.save()
    _record(action="create" if creating else "update", obj=obj, actor=actor, ip=ip, data={"fields": list(changed)})


@transaction.atomic
def routing_object_delete(*, obj: RoutingObject, actor: User | None, ip: str | None = None) -> None:
    label = _label(obj)
    obj.delete()
    audit_record(action=f"routing.{_KINDS[type(obj)]}.delete", actor=actor, target=label, ip=ip)
    routing_changed()


def _target_set(*, target: RouterTarget, actor: User | None, ip: str | None, action: str, **fields: bool) -> bool:
    changed = [name for name, value in fields.items() if getattr(target, name) != value]
    if not changed:
        return False
    with transaction.atomic():
        for name in changed:
            setattr(target, name, fields[name])
        target.save(update_fields=changed)
        _record(action=action, obj=target, actor=actor, ip=ip, data={name: fields[name] for name in changed})
    return True


def target_drain(*, target: RouterTarget, actor: User | None, ip: str | None = None) -> bool:
    """Stop sending new requests to a target; requests already there finish. False if it was draining already."""
    return _target_set(target=target, actor=actor, ip=ip, action="drain", draining=True)


def target_undrain(*, target: RouterTarget, actor: User | None, ip: str | None = None) -> bool:
    return _target_set(target=target, actor=actor, ip=ip, action="undrain", draining=False)


def target_enable(*, target: RouterTarget, actor: User | None, ip: str | None = None) -> bool:
    """Put a target (back) into service: enabled and not draining."""
    return _target_set(target=target, actor=actor, ip=ip, action="enable", enabled=True, draining=False)


def target_disable(*, target: RouterTarget, actor: User | None, ip: str | None = None) -> bool:
    return _target_set(target=target, actor=actor, ip=ip, action="disable", enabled=False)


def targets_probe(*, target_ids: Sequence[int] | None = None) -> list[ProbeResult]:
    """Probe every enabled target (or the given ones) over HTTP and record status, latency and last error.

    A target whose probe verdict flips between healthy and unhealthy changes the routing table (routing/table.py
    leaves probe-unhealthy targets to last), so such a flip publishes a routing invalidation."""
    targets = RouterTarget.objects.filter(enabled=True).order_by("id")
    if target_ids is not None:
        targets = targets.filter(id__in=target_ids)
    by_id = {target.id: target for target in targets}
    probes = [
        ProbeTarget(t.id, t.protocol, t.base_url, os.environ.get(t.api_key_env, "") if t.api_key_env else "")
        for t in by_id.values()
    ]
    results = asyncio.run(probe_targets_http(probes, timeout=float(settings.ROUTING_PROBE_TIMEOUT_SECONDS)))
    now = timezone.now()
    flipped = False
    for result in results:
        target = by_id[result.target_id]
        flipped |= (target.health_status == HealthStatus.UNHEALTHY) == result.healthy
        target.health_status = HealthStatus.HEALTHY if result.healthy else HealthStatus.UNHEALTHY
        target.latency_ms = result.latency_ms
        target.last_error = result.error
        target.last_probed_at = now
        try:
            target.save(update_fields=["health_status", "latency_ms", "last_error", "last_probed_at"])
        except DatabaseError:  # deleted while we probed: nothing to record
            log.info("target %s vanished during its probe", target.id)
    if flipped:
        routing_changed()
    return results
