"""What a request's outcome means, in the product's words, for the request log: what happened, whether it counted,
and what to do next. Keyed by the ledger's outcome and HTTP status (metering does not import the gateway's error
catalogue; these sentences follow its codes and next steps)."""

from __future__ import annotations

from dataclasses import dataclass

from metering.models import Outcome, Stage, UsageEvent


@dataclass(frozen=True)
class Explanation:
    title: str
    what: str
    next_step: str


_BY_STATUS: dict[int, Explanation] = {
    400: Explanation(
        "The request was not valid",
        "The body was not the JSON the API expects: a field was missing, had the wrong type, or the JSON was broken.",
        "Fix the request as the error message in the response says, then send it again.",
    ),
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
    404: Explanation(
        "The model does not exist",
        "No model by that name is in the catalog.",
        "Use a name from the Models page or from GET /v1/models.",
    ),
    413: Explanation(
        "The request was too large",
        "The request body was larger than the gateway accepts.",
        "Send a shorter conversation or prompt.",
    ),
}

_BY_OUTCOME: dict[str, Explanation] = {
    Outcome.RATE_LIMITED: Explanation(
        "This key sent requests too quickly",
        "Each key may send a limited number of requests per minute; this one came in over that pace.",
        "Wait the seconds the Retry-After header gives, then retry. Spreading requests out avoids this.",
    ),
    Outcome.QUOTA_EXHAUSTED: Explanation(
        "Your organization's allowance was used up",
        "All of the allowance for the window had been used when this request arrived.",
        "Wait until the allowance comes back (the Usage page says when), or ask for a bigger plan.",
    ),
    Outcome.ROUTING_ERROR: Explanation(
        "No backend could take the request",
        "Every backend serving this model was unavailable at that moment. The problem was on our side.",
        "Retry in a few seconds.",
    ),
    Outcome.BACKEND_ERROR: Explanation(
        "The backend failed while answering",
        "The model's backend returned an error part-way or instead of an answer. The problem was on our side.",
        "Retry the request.",
    ),
    Outcome.BACKEND_TIMEOUT: Explanation(
        "The backend did not answer in time",
        "The model's backend took longer than the gateway waits. The problem was on our side.",
        "Retry the request; a smaller max_tokens makes answers quicker.",
    ),
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


def explain(event: UsageEvent) -> Explanation | None:
    """None for a request that succeeded, or one still running."""
    if event.outcome == Outcome.OK:
        return None
    if event.outcome == Outcome.CLIENT_ERROR:
        return _BY_STATUS.get(event.status_code or 400, _BY_STATUS[400])
    if event.outcome:
        return _BY_OUTCOME.get(event.outcome)
    return None


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
