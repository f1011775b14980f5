"""POST /v1/chat/completions and /v1/completions: the check pipeline in docs/architecture.md's order, then forwarding.

1 key present · 2 key known (hot cache) · 3 key active (`_key`) · 4 body valid (`_body`) · 5 model known (`_model`),
plan and key allow it (`_entitlement`) · 6 admission, one atomic call (`_admission`) · 7 a healthy target and
8 forward, with lifecycle events around it (`_forward`, gateway/forward.py) · 9 the refund of a failure.
Each step returns its value or a Refusal with its own error code; a refusal never consumes allowance, and a routing
or backend failure refunds it (the outcome says: portal/outcomes.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.conf import settings

from apikeys.records import KeyRecord
from billing.admission import UNAVAILABLE, Decision
from billing.allowances import KEY_RATE, request_limits, scope_for
from billing.selectors import PlanSnapshot
from gateway.auth import AuthFailure, failure_headers
from gateway.bodies import (
    BodyProblem,
    BodyTooLarge,
    ClientGone,
    check_chat,
    check_completion,
    parse_json_object,
    read_body,
)
from gateway.errors import CATALOGUE
from gateway.forward import Admitted, Forwarder
from gateway.headers import rate_limit_headers, retry_after_header
from gateway.keyscan import client_address
from gateway.responses import Header, Receive, Send, send_error
from metering.events import LifecycleEvent
from metering.stream import journal_for
from portal.outcomes import Outcome
from portal.settings_cache import SettingsCache
from routing.adapters.base import Kind
from routing.table import AliasRoute, RoutingTable

if TYPE_CHECKING:
    from gateway.state import Gateway

log = logging.getLogger(__name__)

_MAX_BODY_BYTES = SettingsCache(lambda: int(settings.GATEWAY_MAX_BODY_BYTES))


def _now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(slots=True)
class Refusal:
    """A step's "no": the error the client gets and the outcome the request log records; never billed."""

    code: str
    outcome: Outcome = Outcome.CLIENT_ERROR
    message: str | None = None
    param: str | None = None
    headers: list[Header] = field(default_factory=list)


class Completion:
    """One request's trip through the pipeline: `handle` runs the steps in order; each returns a value or a
    Refusal, and the first refusal is the answer."""

    def __init__(
        self, gateway: Gateway, scope: dict[str, Any], receive: Receive, send: Send, kind: Kind, request_id: str
    ) -> None:
        self.gw = gateway
        self.scope = scope
        self.receive = receive
        self.send = send
        self.kind = kind
        self.request_id = request_id
        self.started = time.monotonic()
        self.key: KeyRecord | None = None
        self.plan: PlanSnapshot | None = None
        self.model = ""
        self.table: RoutingTable | None = None  # read by step 5, kept for the degrade alias of step 6
        self.forwarder: Forwarder | None = None  # made by step 6, which plans the first attempt with it

    async def handle(self) -> None:
        headers = dict(self.scope["headers"])
        if isinstance(key := await self._key(headers), Refusal):
            return await self._refuse(key)
        try:
            data = await self._body(headers)
        except ClientGone:
            return  # nobody to answer
        if isinstance(data, Refusal):
            return await self._refuse(data)
        if isinstance(route := await self._model(data), Refusal):
            return await self._refuse(route)
        if isinstance(plan := await self._entitlement(key, route), Refusal):
            return await self._refuse(plan)
        if isinstance(admitted := await self._admission(key, plan, data, route), Refusal):
            return await self._refuse(admitted)
        await self._forward(key, admitted)

    # -- the steps, in order ---------------------------------------------------------------------------------

    async def _key(self, headers: dict[bytes, bytes]) -> KeyRecord | Refusal:
        """Steps 1 to 3: a key is present, known and active (gateway/auth.py, the same path as every endpoint)."""
        auth = await self.gw.authenticate(headers, client_address(self.scope))
        if not isinstance(auth, AuthFailure):
            self.key = auth
            return auth
        # A revoked or expired key is still somebody's: the refusal goes to their request log, never billed.
        self.key = auth.record
        return Refusal(auth.code, message=auth.message, headers=failure_headers(auth))

    async def _body(self, headers: dict[bytes, bytes]) -> dict[str, Any] | Refusal:
        """Step 4: the body is read within the size limit, is a JSON object, and has OpenAI's request shape."""
        declared = headers.get(b"content-length")
        limit = _MAX_BODY_BYTES.get()
        try:
            raw = await read_body(self.receive, limit, int(declared) if declared and declared.isdigit() else None)
        except BodyTooLarge:
            return Refusal("request_too_large", message=f"The request body is larger than {limit} bytes.")
        data = parse_json_object(raw)
        if isinstance(data, BodyProblem):
            return Refusal("invalid_request", message=data.message, param=data.param)
        problem = check_chat(data) if self.kind == "chat" else check_completion(data)
        if problem is not None:
            return Refusal("invalid_request", message=problem.message, param=problem.param)
        return data

    async def _model(self, data: dict[str, Any]) -> AliasRoute | Refusal:
        """Step 5a: the model is an alias of the cached routing table."""
        self.model = data["model"]
        self.table = table = await self.gw.routing.table()
        route = table.route(self.model)
        if route is None:
            return Refusal(
                "model_not_found",
                param="model",
                message=f"The model '{self.model[:100]}' does not exist. GET /v1/models lists yours.",
            )
        return route

    async def _entitlement(self, key: KeyRecord, route: AliasRoute) -> PlanSnapshot | Refusal:
        """Step 5b: the key may infer, and both the organization's plan and the key's own model list allow the
        alias."""
        self.plan = plan = await self.gw.plans.get(key.organization_id)
        if "inference" not in key.scopes:
            return Refusal(
                "insufficient_scope", message="This key has no inference scope; use a key made for inference."
            )
        alias = self.model
        if (key.allowed_models and alias not in key.allowed_models) or not plan.allows(alias):
            return Refusal(
                "model_not_allowed", param="model", message=f"Your plan or this key does not allow '{self.model}'."
            )
        return plan

    async def _admission(
        self, key: KeyRecord, plan: PlanSnapshot, data: dict[str, Any], route: AliasRoute
    ) -> Admitted | Refusal:
        """Step 6: the key's rate limit and the organization's allowances, in one atomic call that also journals the
        `accepted` event; over the allowance, a plan that degrades serves the request with its cheaper alias."""
        limits = request_limits(plan=plan, key_id=key.id, key_limit=key.rate_limit_requests)
        scope = scope_for(key.organization_id)
        stream = bool(data.get("stream"))
        accepted = self._accepted(route, "standard", stream)
        # Admission's round trip is under way while the first attempt is planned: that work is off the critical path.
        admission = asyncio.Task(
            self.gw.engine.admit(
                scope=scope, limits=limits, cost=route.weight, now_ms=accepted.at_ms, journal=journal_for(accepted)
            ),
            loop=asyncio.get_running_loop(),
            eager_start=True,
        )
        self.forwarder = forwarder = Forwarder(
            self.gw, kind=self.kind, request_id=self.request_id, send=self.send, receive=self.receive
        )
        planned = forwarder.plan_early(data, route)
        decision = await admission
        allowance_class = "standard"
        served = route
        if not decision.admitted and decision.refused_by not in (KEY_RATE, UNAVAILABLE) and plan.degrades:
            assert self.table is not None
            degraded = self.table.route(plan.degrade_to or "")
            if degraded is not None:
                # Over the organization's allowance: served by the cheaper alias, still paced by the key's limit.
                limits = limits[:1]
                accepted = self._accepted(degraded, "degraded", stream)
                decision = await self.gw.engine.admit(
                    scope=scope,
                    limits=limits,
                    cost=degraded.weight,
                    now_ms=accepted.at_ms,
                    journal=journal_for(accepted),
                )
                served, allowance_class, planned = degraded, "degraded", None
        self.gw.metrics.admission[(allowance_class if decision.admitted else decision.refused_by) or "refused"] += 1
        limit_headers = rate_limit_headers(decision.states, _now_ms())
        if not decision.admitted:
            return _admission_refusal(decision, limit_headers)
        if not decision.journaled:  # embedded mode, or admitted while Redis was unreachable (fail_open)
            await self.gw.usage.record_now(accepted)
        extra = [*limit_headers, (b"x-request-id", self.request_id.encode())]
        if served is not route:
            extra.append((b"x-portal-served-model", served.alias.encode()))
        return Admitted(data, served, allowance_class, limits, decision, accepted, extra, planned)

    async def _forward(self, key: KeyRecord, admitted: Admitted) -> None:
        """Steps 7 to 9: a target, the exchange, the refund of a failure and the `completed` event."""
        assert self.forwarder is not None
        exchange = await self.forwarder.run(admitted)
        # Routing and backend failures are never billed; if the units cannot be given back now, the completed event
        # says so and metering gives them back once it records the refund.
        refunded = exchange.refundable
        refund_owed = await self._refund(key, admitted) if refunded else False
        latency = self._latency_ms()
        self.gw.metrics.answered(self.kind, exchange.outcome, exchange.status, latency)
        route = admitted.route
        self.gw.usage.record_later(
            self._event(
                "completed",
                served_model=route.alias,
                family=route.family,
                allowance_class=admitted.allowance_class,
                cost_units=0 if refunded else route.weight,
                admitted_at_ms=admitted.decision.admitted_at_ms,
                outcome=exchange.outcome,
                status_code=exchange.status or None,
                error_code=exchange.ledger_error_code,
                target_id=exchange.target_id,
                forwarded_at_ms=exchange.forwarded_at_ms,
                latency_ms=latency,
                prompt_tokens=exchange.prompt_tokens,
                completion_tokens=exchange.completion_tokens,
                stream=admitted.accepted.stream,
                refunded=refunded,
                refund_owed=refund_owed,
            )
        )

    # -- what the steps share --------------------------------------------------------------------------------

    async def _refund(self, key: KeyRecord, admitted: Admitted) -> bool:
        """Give the units back; True when that could not be done now (metering owes them)."""
        try:
            return not await self.gw.engine.refund(
                scope=scope_for(key.organization_id),
                limits=admitted.limits,
                cost=admitted.route.weight,
                admitted_at_ms=admitted.decision.admitted_at_ms,
            )
        except Exception:
            log.warning("request %s: refund failed; metering gives the units back", self.request_id)
            return True

    async def _refuse(self, refusal: Refusal) -> None:
        """The answer to a refused request: counted, recorded for the key's request log when the key is known (its
        owner sees it), never billed."""
        status, latency = CATALOGUE[refusal.code].status, self._latency_ms()
        self.gw.metrics.answered(self.kind, refusal.outcome, status, latency)
        if self.key is not None:
            await self.gw.usage.record_now(
                self._event(
                    "refused",
                    outcome=refusal.outcome,
                    status_code=status,
                    error_code=refusal.code,
                    latency_ms=latency,
                )
            )
        await send_error(
            self.send,
            refusal.code,
            self.request_id,
            message=refusal.message,
            param=refusal.param,
            extra_headers=refusal.headers,
        )

    def _event(self, stage: str, at_ms: int | None = None, **fields: Any) -> LifecycleEvent:
        assert self.key is not None
        return LifecycleEvent(
            stage=stage,
            request_id=self.request_id,
            at_ms=_now_ms() if at_ms is None else at_ms,
            organization_id=self.key.organization_id,
            key_id=self.key.id,
            user_id=self.key.created_by_id,
            model=self.model,
            plan=self.plan.slug if self.plan else "",
            **fields,
        )

    def _latency_ms(self) -> int:
        return int((time.monotonic() - self.started) * 1000)

    def _accepted(self, route: AliasRoute, allowance_class: str, stream: bool) -> LifecycleEvent:
        """The `accepted` event, made before admission so the engine can write it in the same atomic step; its
        time is the admission time."""
        at_ms = _now_ms()
        return self._event(
            "accepted",
            served_model=route.alias,
            family=route.family,
            allowance_class=allowance_class,
            cost_units=route.weight,
            admitted_at_ms=at_ms,
            stream=stream,
            at_ms=at_ms,
        )


def _admission_refusal(decision: Decision, limit_headers: list[Header]) -> Refusal:
    """Which limit had no room, in words, with when the request would fit (`Retry-After`)."""
    if decision.refused_by == UNAVAILABLE:
        return Refusal(
            "service_unavailable",
            Outcome.ROUTING_ERROR,
            message="Limits cannot be checked right now; retry in a few seconds.",
        )
    state = next((s for s in decision.states if s.name == decision.refused_by), None)
    headers = [*limit_headers, retry_after_header(decision.retry_after_ms)]
    wait = max(1, -(-decision.retry_after_ms // 1000))
    if decision.refused_by == KEY_RATE:
        limit = f"{state.limit} requests per {state.window_ms // 1000} s" if state else "its rate limit"
        return Refusal(
            Outcome.RATE_LIMITED.error_code,
            Outcome.RATE_LIMITED,
            headers=headers,
            message=f"This key is over its rate limit ({limit}). Retry in {wait} s.",
        )
    window = "weekly" if decision.refused_by == "weekly" else "short-window"
    limit = f" of {state.limit} requests" if state else ""
    return Refusal(
        Outcome.QUOTA_EXHAUSTED.error_code,
        Outcome.QUOTA_EXHAUSTED,
        headers=headers,
        message=f"Your organization has used its {window} allowance{limit}. "
        f"The next request fits in {wait} s; or upgrade your plan.",
    )
