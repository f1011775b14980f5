"""The rules of a ledger row: how lifecycle events merge into it, and what it adds to the roll-ups.

Merging is monotonic, which is what makes ingestion idempotent and order-independent:
- a row's stage only moves forward (accepted < forwarded < closed < completed), so a late `forwarded` never undoes a
  completion;
- each lifecycle timestamp and each descriptive field is set by the first event that carries it and never changed;
- the completion fields come from the first `completed` event (which also replaces reconciliation's `unknown`);
- `refunded` only turns on;
- `error_code` goes with the outcome: it is set by the event that sets the outcome (the refusal, else the first
  `completed` event), so a row never holds one request end's outcome beside another's code;
- a refusal is final: once a row has its request's `refused` event, it stays refused (and unbilled) whatever else
  arrives for that request id. A refused row that also heard an admission (Redis ran the admission call after the
  gateway had stopped waiting and answered 503) keeps that admission's units and time and is marked `refunded`:
  the units were booked in the counters, and ingestion gives them back once, when the row first becomes so.
Applying the same events again therefore changes nothing, and events may arrive in any order.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta

from metering.events import LifecycleEvent
from metering.models import Outcome, Stage, UsageEvent

STAGE_RANK = {
    "": 0,
    Stage.REFUSED: 1,
    Stage.ACCEPTED: 2,
    Stage.FORWARDED: 3,
    Stage.CLOSED: 4,
    Stage.COMPLETED: 5,
}
_EVENT_ORDER = {"refused": 0, "accepted": 1, "forwarded": 2, "completed": 3}
_DESCRIPTIVE = ("model", "served_model", "family", "plan", "allowance_class")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(slots=True)
class LedgerRow:
    """A UsageEvent row as plain data: what ingestion merges and writes (model instances cost too much per row)."""

    request_id: str
    organization_id: int
    started_at: datetime
    user_id: int | None = None
    api_key_id: int | None = None
    reported_key_id: int = 0
    stage: str = ""
    model: str = ""
    served_model: str = ""
    family: str = ""
    plan: str = ""
    allowance_class: str = ""
    cost_units: int = 0
    billed: bool = False
    refunded: bool = False
    admitted_at_ms: int | None = None
    outcome: str = ""
    status_code: int | None = None
    error_code: str = ""
    target_id: int | None = None
    latency_ms: int | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    stream: bool = False
    accepted_at: datetime | None = None
    forwarded_at: datetime | None = None
    completed_at: datetime | None = None
    closed_at: datetime | None = None
    recorded_at: datetime | None = None


# The columns a LedgerRow carries, in one order for SQL; every UsageEvent column but the primary key.
COLUMNS = tuple(item.name for item in fields(LedgerRow))
_MODEL_COLUMNS = {field.attname for field in UsageEvent._meta.concrete_fields} - {"id"}
assert set(COLUMNS) == _MODEL_COLUMNS, f"LedgerRow and UsageEvent disagree: {set(COLUMNS) ^ _MODEL_COLUMNS}"
# What a merge may change: everything but the identity of the row.
WRITABLE_FIELDS = tuple(name for name in COLUMNS if name != "request_id")


def ms_to_datetime(at_ms: int) -> datetime:
    # Integer arithmetic: a float timestamp could land a microsecond off and move a request across a bucket edge.
    return _EPOCH + timedelta(milliseconds=at_ms)


def datetime_to_ms(at: datetime) -> int:
    return (at - _EPOCH) // timedelta(milliseconds=1)


def row_apply_events(row: LedgerRow, events: Iterable[LifecycleEvent]) -> None:
    """Merge one request's events into its row, in place (see the module docstring for the rules)."""
    for event in sorted(events, key=lambda item: (_EVENT_ORDER[item.stage], item.at_ms)):
        _apply(row, event)
    _derive(row)


def row_close_unknown(row: LedgerRow, *, now: datetime, refunded: bool) -> None:
    """Reconciliation's verdict on an admitted request whose completion never arrived."""
    row.stage = Stage.CLOSED
    row.outcome = Outcome.UNKNOWN
    row.closed_at = now
    row.refunded = row.refunded or refunded
    _derive(row)


def _apply(row: LedgerRow, event: LifecycleEvent) -> None:
    at = ms_to_datetime(event.at_ms)
    if at < row.started_at:
        row.started_at = at
    stage = event.stage
    if stage == "accepted" and row.accepted_at is None:
        row.accepted_at = at
    elif stage == "forwarded" and row.forwarded_at is None:
        row.forwarded_at = at
    elif stage == "completed" and row.completed_at is None:
        row.completed_at = at
    if event.forwarded_at_ms is not None and row.forwarded_at is None:
        row.forwarded_at = ms_to_datetime(event.forwarded_at_ms)

    for name in _DESCRIPTIVE:
        value = getattr(event, name)
        if value and not getattr(row, name):
            setattr(row, name, value)
    if row.user_id is None and event.user_id:
        row.user_id = event.user_id
    if not row.reported_key_id:
        row.reported_key_id = event.key_id
    if event.stream:
        row.stream = True
    if row.target_id is None and event.target_id is not None:
        row.target_id = event.target_id
    if row.admitted_at_ms is None and stage != "refused":
        if event.admitted_at_ms is not None:
            row.admitted_at_ms = event.admitted_at_ms
        elif stage == "accepted":
            row.admitted_at_ms = event.at_ms
    if stage != "refused" and event.cost_units and not row.cost_units:
        row.cost_units = event.cost_units
    if event.refunded:
        row.refunded = True

    if stage == "refused":
        # A refusal is final: the client was turned away. It also wins over an admission recorded for the same
        # request, which happens when Redis ran an admission call only after the gateway had given up waiting and
        # answered 503: that request was never served, so it is never billed.
        if row.stage != Stage.REFUSED:
            row.stage = Stage.REFUSED
            row.outcome = event.outcome or Outcome.CLIENT_ERROR
            # Even an empty code: whatever a completion said is no longer how the request ended.
            row.error_code = event.error_code
            _fill_result(row, event)
        return
    if row.stage == Stage.REFUSED:
        return
    if stage == "completed" and STAGE_RANK[row.stage] < STAGE_RANK[Stage.COMPLETED]:
        row.outcome = event.outcome or Outcome.UNKNOWN
        row.error_code = event.error_code
        _fill_result(row, event)

    if STAGE_RANK[stage] > STAGE_RANK[row.stage]:
        row.stage = stage


def _fill_result(row: LedgerRow, event: LifecycleEvent) -> None:
    row.status_code = event.status_code if event.status_code is not None else row.status_code
    row.latency_ms = event.latency_ms if event.latency_ms is not None else row.latency_ms
    row.prompt_tokens = event.prompt_tokens if event.prompt_tokens is not None else row.prompt_tokens
    row.completion_tokens = event.completion_tokens if event.completion_tokens is not None else row.completion_tokens


def _derive(row: LedgerRow) -> None:
    admitted = STAGE_RANK[row.stage] >= STAGE_RANK[Stage.ACCEPTED]
    if row_admitted_late(row):
        row.refunded = True  # never billed; its booked units are given back (metering.ingest)
    elif not admitted:
        row.cost_units = 0  # a refusal never counts, whatever the event claimed
    row.billed = admitted and not row.refunded


def row_admitted_late(row: LedgerRow) -> bool:
    """Refused, yet the admission engine booked units for it (only a non-refusal event sets `admitted_at_ms`)."""
    return row.stage == Stage.REFUSED and row.admitted_at_ms is not None and row.cost_units > 0


def row_snapshot(row: LedgerRow) -> tuple[object, ...]:
    return tuple(getattr(row, name) for name in WRITABLE_FIELDS)


@dataclass(frozen=True, slots=True)
class Contribution:
    """What one row adds to the roll-ups: where (organization, key, model, time) and how much."""

    organization_id: int
    key_id: int
    model: str
    at: datetime
    billed: bool
    cost_units: int
    prompt_tokens: int
    completion_tokens: int
    outcome: str


def row_contribution(row: LedgerRow) -> Contribution | None:
    if not row.stage:
        return None  # a row that holds no event yet adds nothing
    return Contribution(
        organization_id=row.organization_id,
        key_id=row.reported_key_id,
        model=row.model,
        at=row.started_at,
        billed=row.billed,
        cost_units=row.cost_units if row.billed else 0,
        prompt_tokens=row.prompt_tokens or 0,
        completion_tokens=row.completion_tokens or 0,
        outcome=row.outcome,
    )


def row_from_events(events: Sequence[LifecycleEvent]) -> LedgerRow:
    """A new row holding what a request's events say, as if the ledger had never seen it."""
    row = LedgerRow(
        request_id=events[0].request_id,
        organization_id=events[0].organization_id,
        started_at=ms_to_datetime(min(event.at_ms for event in events)),
    )
    row_apply_events(row, events)
    return row
