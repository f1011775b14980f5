"""What a request's outcome means, in the product's words, for the request log and `/api/v1/requests`: what
happened, whether it counted, and what to do next.

Explained from the row's `error_code` through the product's one error catalogue (portal/error_catalogue.py, which
the gateway answers from too), with what the row knows added (when the key was revoked or expired). Rows recorded
before the ledger kept the code are explained from their outcome and HTTP status; outcomes that are not errors sent
to the client (a client that hung up, a request closed as unknown) have their own sentences here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo

from metering.models import Outcome, Stage, UsageEvent
from portal.error_catalogue import CATALOGUE, ErrorKind
from portal.outcomes import Outcome as OutcomeCode


@dataclass(frozen=True)
class Explanation:
    title: str
    what: str
    next_step: str


# Refused before any key was known: such requests are nobody's, so they never reach a request log.
_NEVER_LOGGED = frozenset({"invalid_api_key", "too_many_invalid_keys", "method_not_allowed", "not_found"})
# The request log's error filter: the codes its rows can hold, by what the log calls them.
ERROR_CODE_CHOICES = [
    (code, f"{kind.log_title} ({code})") for code, kind in CATALOGUE.items() if code not in _NEVER_LOGGED
]

# Rows without a code (recorded before the ledger kept it): the code their outcome or status stands for, where
# only one does.
_CODE_OF_OUTCOME = {str(outcome): outcome.error_code for outcome in OutcomeCode}
_CODE_BY_STATUS = {400: "invalid_request", 404: "model_not_found", 413: "request_too_large"}

# ... and where several do, the old sentences that cover them all.
_BY_STATUS: dict[int, Explanation] = {
    401: Explanation(
        "The API key was not accepted",
        "The key was missing, mistyped, revoked or expired, so the request was turned away before anything ran.",
        "Create a new key on the API keys page (or copy the whole key again) and use it instead.",
    ),
    403: Explanation(
        "This model or endpoint is not allowed",
        "Your plan or this key's settings do not include the model asked for, or the key lacks the needed scope.",
        "Pick a model your plan includes (see the Models page), change the key's allowed models, or upgrade.",
    ),
}

_BY_OUTCOME: dict[str, Explanation] = {
    Outcome.CLIENT_CANCELLED: Explanation(
        "Your client hung up",
        "The connection closed before the answer was complete, for example a timeout or a stopped stream.",
        "If that was not on purpose, raise your client's timeout.",
    ),
    Outcome.UNKNOWN: Explanation(
        "We never learned how this request ended",
        "The gateway stopped hearing about it after it was let through, so it was closed as unknown.",
        "Retry the request if you did not get an answer.",
    ),
}


def explain(event: UsageEvent, *, zone: tzinfo = UTC) -> Explanation | None:
    """None for a request that succeeded, or one still running. Times are given in `zone`."""
    if event.outcome == Outcome.OK or not event.outcome:
        return None
    kind = CATALOGUE.get(event.error_code or _code_of_old_row(event))
    if kind is not None:
        return _explained(kind, event, zone)
    if event.outcome == Outcome.CLIENT_ERROR:
        return _BY_STATUS.get(event.status_code or 0) or _explained(CATALOGUE["invalid_request"], event, zone)
    return _BY_OUTCOME.get(event.outcome)


def _explained(kind: ErrorKind, event: UsageEvent, zone: tzinfo) -> Explanation:
    return Explanation(kind.log_title, _what(kind, event, zone), kind.log_advice)


def _code_of_old_row(event: UsageEvent) -> str:
    """The code a row recorded without one stands for, or "" when its outcome and status do not tell."""
    if event.outcome == Outcome.ROUTING_ERROR:
        # Refused: admission could not be checked; completed: no target could take it.
        return "service_unavailable" if event.stage == Stage.REFUSED else "no_healthy_backend"
    if event.outcome == Outcome.CLIENT_ERROR:
        if event.status_code == 401:
            return _key_state_at(event)
        return _CODE_BY_STATUS.get(event.status_code or 0, "")
    # Every other outcome stands for one code, the one the gateway gives it (portal/outcomes.py).
    return _CODE_OF_OUTCOME.get(event.outcome, "")


def _key_state_at(event: UsageEvent) -> str:
    """A 401 in the ledger was a real key refused for its state: the key says which, if it still exists."""
    key = event.api_key
    if key is None:
        return ""
    if key.revoked_at is not None and key.revoked_at <= event.started_at:
        return "key_revoked"
    if key.expires_at is not None and key.expires_at <= event.started_at:
        return "key_expired"
    return ""


def _what(kind: ErrorKind, event: UsageEvent, zone: tzinfo) -> str:
    key = event.api_key
    if kind.code == "key_revoked" and key is not None and key.revoked_at is not None:
        return f"{kind.log_what} It was revoked on {_when(key.revoked_at, zone)}."
    if kind.code == "key_expired" and key is not None and key.expires_at is not None:
        return f"{kind.log_what} It expired on {_when(key.expires_at, zone)}."
    return kind.log_what


def _when(at: datetime, zone: tzinfo) -> str:
    local = at.astimezone(zone)
    return f"{local.day} {local:%b %Y} at {local:%H:%M} ({zone})"


def counted_sentence(event: UsageEvent) -> str:
    """Whether the request counts against the allowance, and why."""
    if event.stage == Stage.REFUSED:
        return "It did not count against your allowance: refused requests never do."
    if event.refunded:
        return "It did not count against your allowance: requests that fail on our side are given back."
    if event.billed:
        units = event.cost_units
        return f"It counted against your allowance ({units} unit{'s' if units != 1 else ''})."
    return "It does not count against your allowance."


@dataclass(frozen=True)
class Step:
    name: str
    at: object  # datetime | None; None: the step did not happen (or has not yet)
    note: str


def lifecycle(event: UsageEvent) -> list[Step]:
    """accepted → forwarded → completed → recorded, or refused → recorded, with what each step means."""
    if event.stage == Stage.REFUSED:
        return [
            Step("Refused", event.started_at, "Turned away before reaching a model."),
            Step("Recorded", event.recorded_at, "Written to your usage history."),
        ]
    ending = (
        Step("Closed as unknown", event.closed_at, "No completion arrived; reconciliation closed it.")
        if event.stage == Stage.CLOSED
        else Step("Completed", event.completed_at, "The answer (or the error) went back to your client.")
    )
    return [
        Step("Accepted", event.accepted_at, "The key, the model and the allowance checks passed."),
        Step("Forwarded", event.forwarded_at, "Sent on to a backend serving the model."),
        ending,
        Step("Recorded", event.recorded_at, "Written to your usage history."),
    ]
