"""Slowing down key scans: invalid keys presented from one client address are counted in a rolling window shared by
every worker (the admission engine, scope `ip:<address>`); past the limit that address gets 429 before any lookup.

Only failures are counted, so a client with a valid key never pays for this. While an address is refused, a request
whose key is already active in this worker's hot cache still goes through: an office behind one NAT address keeps
working while somebody there runs a broken script, and a scanner learns nothing from it (it cannot guess a live
key). The refusal is remembered in process memory until the window frees a unit, so a refused scan costs no network
call at all.
"""

from __future__ import annotations

import logging
import time

from django.conf import settings

from billing.admission import UNAVAILABLE, AdmissionEngine, Limit
from portal.client_address import scope_client_address

log = logging.getLogger(__name__)

MAX_BLOCKED_ADDRESSES = 100_000


class InvalidKeyGuard:
    def __init__(self, engine: AdmissionEngine) -> None:
        self.engine = engine
        self._blocked: dict[str, float] = {}  # address -> monotonic time the refusal ends

    def clear(self) -> None:
        self._blocked.clear()

    def blocked_for(self, address: str) -> int | None:
        """Whole seconds until this address may try unknown keys again, or None when it may now."""
        if not self._blocked:  # the usual case: one falsy check on the request path
            return None
        until = self._blocked.get(address)
        if until is None:
            return None
        left = until - time.monotonic()
        if left <= 0:
            del self._blocked[address]
            return None
        return max(1, int(left + 0.999))

    async def failed(self, address: str) -> int | None:
        """Count one invalid key from this address. Past the limit, start refusing it and return the seconds to
        wait (this request already gets the refusal); None while it is within the limit."""
        limit = Limit(
            name="invalid_keys",
            key="invalid-keys",
            limit=settings.GATEWAY_INVALID_KEY_LIMIT,
            window_ms=int(settings.GATEWAY_INVALID_KEY_WINDOW_SECONDS * 1000),
        )
        try:
            decision = await self.engine.admit(
                scope=_scope(address), limits=[limit], cost=1, on_unavailable="fail_open"
            )
        except ValueError:  # an address the scope cannot hold; nothing to count it under
            return None
        if decision.admitted or decision.refused_by == UNAVAILABLE:
            return None
        if len(self._blocked) >= MAX_BLOCKED_ADDRESSES:
            self._blocked.clear()
        self._blocked[address] = time.monotonic() + decision.retry_after_ms / 1000
        log.warning(  # the address only: never the keys it sent
            "client address %s sent too many invalid API keys; refusing it for %d ms", address, decision.retry_after_ms
        )
        return self.blocked_for(address)


def _scope(address: str) -> str:
    return f"ip:{address or 'unknown'}"[:64]


def client_address(scope: dict[str, object]) -> str:
    """The address invalid keys are counted under: the peer, or behind TRUSTED_PROXIES the client they name."""
    return scope_client_address(scope)
