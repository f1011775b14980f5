"""POST /v1/chat/completions and /v1/completions: the check pipeline in docs/gateway.md's order, then forwarding.

1 key present · 2 key known (hot cache) · 3 key active · 4 body valid, model known · 5 plan and key allow the model ·
6 admission (one atomic call) · 7 a healthy target · 8 forward, with lifecycle events around it.
Each refusal has its own error code; a refusal never consumes allowance, and a routing or backend failure refunds it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings

from apikeys.records import KeyRecord
from billing.admission import UNAVAILABLE, Decision, Limit
from billing.allowances import KEY_RATE, request_limits, scope_for
from billing.selectors import PlanSnapshot
from gateway.auth import AuthFailure, authenticate, send_auth_failure
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
from gateway.forward import Attempt, Exchange, Forwarder
from gateway.headers import rate_limit_headers, retry_after_header
from gateway.keyscan import client_address
from gateway.responses import Header, Receive, Send, send_error
from metering.events import LifecycleEvent
from metering.stream import journal_for
from portal.settings_cache import SettingsCache
from routing.adapters.base import Kind
from routing.table import AliasRoute

log = logging.getLogger(__name__)

_MAX_BODY_BYTES = SettingsCache(lambda: int(settings.GATEWAY_MAX_BODY_BYTES))


def _now_ms() -> int:
    return int(time.time() * 1000)


class Completion:
    """One request's trip through the pipeline."""

    def __init__(
        self, gateway: Any, scope: dict[str, Any], receive: Receive, send: Send, kind: Kind, request_id: str
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

    async def _refuse(
        self,
        code: str,
        outcome: str,
        *,
        message: str | None = None,
        param: str | None = None,
        headers: list[Header] | None = None,
    ) -> None:
        """A refusal after the key is known: recorded for the request log, never billed."""
        status, latency = CATALOGUE[code].status, self._latency_ms()
        self.gw.metrics.answered(self.kind, outcome, status, latency)
        await self.gw.usage.record_now(
            self._event("refused", outcome=outcome, status_code=status, error_code=code, latency_ms=latency)
        )
        await send_error(self.send, code, self.request_id, message=message, param=param, extra_headers=headers or [])

    def _latency_ms(self) -> int:
        return int((time.monotonic() - self.started) * 1000)

    async def handle(self) -> None:
        headers = dict(self.scope["headers"])
        auth = await authenticate(headers, self.gw.keys, _now_ms(), self.gw.key_guard, client_address(self.scope))
        if isinstance(auth, AuthFailure):
            self.gw.metrics.auth_failures[auth.code] += 1
            if auth.record is not None:
                # A revoked or expired key is still somebody's: the refusal goes to their request log, never billed.
                self.key = auth.record
                await self.gw.usage.record_now(
                    self._event(
                        "refused",
                        outcome="client_error",
                        status_code=CATALOGUE[auth.code].status,
                        error_code=auth.code,
                        latency_ms=self._latency_ms(),
                    )
                )
            self.gw.metrics.answered(self.kind, "client_error", CATALOGUE[auth.code].status, self._latency_ms())
            await send_auth_failure(self.send, auth, self.request_id)
            return
        self.key = auth

        declared = headers.get(b"content-length")
        limit = _MAX_BODY_BYTES.get()
        try:
            raw = await read_body(self.receive, limit, int(declared) if declared and declared.isdigit() else None)
        except BodyTooLarge:
            await self._refuse(
                "request_too_large", "client_error", message=f"The request body is larger than {limit} bytes."
            )
            return
        except ClientGone:
            return
        data = parse_json_object(raw)
        if isinstance(data, BodyProblem):
            await self._refuse("invalid_request", "client_error", message=data.message, param=data.param)
            return
        problem = check_chat(data) if self.kind == "chat" else check_completion(data)
        if problem is not None:
            await self._refuse("invalid_request", "client_error", message=problem.message, param=problem.param)
            return
        self.model = data["model"]

        table = await self.gw.routing.table()
        route = table.route(self.model)
        if route is None:
            await self._refuse(
                "model_not_found",
                "client_error",
                param="model",
                message=f"The model '{self.model[:100]}' does not exist. GET /v1/models lists yours.",
            )
            return
        self.plan = await self.gw.plans.get(self.key.organization_id)
        if "inference" not in self.key.scopes:
            await self._refuse(
                "insufficient_scope",
                "client_error",
                message="This key has no inference scope; use a key made for inference.",
            )
            return
        if not self._entitled(self.model):
            await self._refuse(
                "model_not_allowed",
                "client_error",
                param="model",
                message=f"Your plan or this key does not allow '{self.model}'.",
            )
            return

        limits = request_limits(plan=self.plan, key_id=self.key.id, key_limit=self.key.rate_limit_requests)
        scope = scope_for(self.key.organization_id)
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
        forwarder = Forwarder(self.gw)
        planned = forwarder.plan_early(body=data, kind=self.kind, route=route, request_id=self.request_id)
        decision = await admission
        allowance_class = "standard"
        served = route
        if not decision.admitted and decision.refused_by not in (KEY_RATE, UNAVAILABLE) and self.plan.degrades:
            degraded = table.route(self.plan.degrade_to or "")
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
        now_ms = _now_ms()
        limit_headers = rate_limit_headers(decision.states, now_ms)
        if not decision.admitted:
            await self._refuse_admission(decision, limit_headers)
            return
        if not decision.journaled:  # embedded mode, or admitted while Redis was unreachable (fail_open)
            await self.gw.usage.record_now(accepted)
        extra = [*limit_headers, (b"x-request-id", self.request_id.encode())]
        if served is not route:
            extra.append((b"x-portal-served-model", served.alias.encode()))
        await self._forward(forwarder, planned, data, served, limits, decision, extra, allowance_class, accepted)

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

    def _entitled(self, alias: str) -> bool:
        assert self.key is not None and self.plan is not None
        if self.key.allowed_models and alias not in self.key.allowed_models:
            return False
        return self.plan.allows(alias)

    async def _refuse_admission(self, decision: Decision, limit_headers: list[Header]) -> None:
        if decision.refused_by == UNAVAILABLE:
            await self._refuse(
                "service_unavailable",
                "routing_error",
                message="Limits cannot be checked right now; retry in a few seconds.",
            )
            return
        state = next((s for s in decision.states if s.name == decision.refused_by), None)
        headers = [*limit_headers, retry_after_header(decision.retry_after_ms)]
        wait = max(1, -(-decision.retry_after_ms // 1000))
        if decision.refused_by == KEY_RATE:
            limit = f"{state.limit} requests per {state.window_ms // 1000} s" if state else "its rate limit"
            await self._refuse(
                "rate_limit_exceeded",
                "rate_limited",
                headers=headers,
                message=f"This key is over its rate limit ({limit}). Retry in {wait} s.",
            )
            return
        window = "weekly" if decision.refused_by == "weekly" else "short-window"
        limit = f" of {state.limit} requests" if state else ""
        await self._refuse(
            "quota_exhausted",
            "quota_exhausted",
            headers=headers,
            message=f"Your organization has used its {window} allowance{limit}. "
            f"The next request fits in {wait} s; or upgrade your plan.",
        )

    async def _forward(
        self,
        forwarder: Forwarder,
        planned: Attempt | None,
        data: dict[str, Any],
        route: AliasRoute,
        limits: list[Limit],
        decision: Decision,
        headers: list[Header],
        allowance_class: str,
        accepted: LifecycleEvent,
    ) -> None:
        def forwarded(exchange: Exchange) -> None:
            self.gw.usage.record_unless_completed(
                self.request_id, _unmade_forwarded(accepted, route.alias, exchange.target_id, exchange.forwarded_at_ms)
            )

        exchange = await forwarder.run(
            body=data,
            kind=self.kind,
            route=route,
            request_id=self.request_id,
            send=self.send,
            receive=self.receive,
            headers=headers,
            on_forwarded=forwarded,
            planned=planned,
        )
        assert self.key is not None
        # Routing and backend failures are never billed; if the units cannot be given back now, the completed event
        # says so and metering gives them back once it records the refund.
        refunded = exchange.refundable
        refund_owed = False
        if exchange.refundable:
            try:
                refund_owed = not await self.gw.engine.refund(
                    scope=scope_for(self.key.organization_id),
                    limits=limits,
                    cost=route.weight,
                    admitted_at_ms=decision.admitted_at_ms,
                )
            except Exception:
                log.warning("request %s: refund failed; metering gives the units back", self.request_id)
                refund_owed = True
        latency = self._latency_ms()
        self.gw.metrics.answered(self.kind, exchange.outcome, exchange.status, latency)
        self.gw.usage.record_later(
            self._event(
                "completed",
                served_model=route.alias,
                family=route.family,
                allowance_class=allowance_class,
                cost_units=0 if refunded else route.weight,
                admitted_at_ms=decision.admitted_at_ms,
                outcome=exchange.outcome,
                status_code=exchange.status or None,
                error_code=exchange.ledger_error_code,
                target_id=exchange.target_id,
                forwarded_at_ms=exchange.forwarded_at_ms,
                latency_ms=latency,
                prompt_tokens=exchange.prompt_tokens,
                completion_tokens=exchange.completion_tokens,
                stream=bool(data.get("stream")),
                refunded=refunded,
                refund_owed=refund_owed,
            )
        )


def _unmade_forwarded(
    accepted: LifecycleEvent, served_model: str, target_id: int | None, at_ms: int | None
) -> Callable[[], LifecycleEvent]:
    """How to make the `forwarded` event if the flush needs it. It holds the accepted event (a few strings and
    numbers), not the request: what waits for the flush must not keep the request's objects alive."""

    def make() -> LifecycleEvent:
        return LifecycleEvent(
            stage="forwarded",
            request_id=accepted.request_id,
            at_ms=at_ms if at_ms is not None else _now_ms(),
            organization_id=accepted.organization_id,
            key_id=accepted.key_id,
            user_id=accepted.user_id,
            model=accepted.model,
            plan=accepted.plan,
            served_model=served_model,
            target_id=target_id,
        )

    return make
