"""Draining the usage stream with a real Redis consumer group: acknowledged only after commit, nothing lost or
counted twice when a consumer dies, bad entries set aside, and the embedded in-process queue."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import OperationalError, transaction
from django.test import override_settings

from apikeys.models import ApiKey
from metering import drain as drain_module
from metering.drain import StreamDrainer, usage_drain
from metering.ingest import usage_events_write
from metering.models import Granularity, UsageEvent, UsageRollup
from metering.stream import publish_events_sync, take_local_events
from tests.metering.conftest import Stream
from tests.metering.events import completed_requests, lifecycle
from tests.metering.helpers import assert_rollups_exact

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_stream_is_written_to_the_ledger_and_acknowledged_only_after_commit(
    org: Any, key: ApiKey, stream: Stream, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Published before the group exists: the group starts at the stream's beginning.
    stream.publish(completed_requests(org, key, 5))
    seen_at_ack: list[tuple[bool, int]] = []
    acknowledge = StreamDrainer._acknowledge

    def spy(self: StreamDrainer, entry_ids: list[str], dead: list[Any]) -> None:
        seen_at_ack.append((transaction.get_connection().in_atomic_block, UsageEvent.objects.count()))
        acknowledge(self, entry_ids, dead)

    monkeypatch.setattr(StreamDrainer, "_acknowledge", spy)

    totals = usage_drain(**stream.drain_kwargs())

    assert (totals.entries, totals.written, totals.dead) == (15, 5, 0)
    assert seen_at_ack == [(False, 5)]  # outside the transaction, with the rows already committed
    assert stream.pending() == 0
    assert UsageEvent.objects.filter(stage="completed").count() == 5


def test_a_failed_write_leaves_the_batch_pending_and_the_next_run_writes_it(
    org: Any, key: ApiKey, stream: Stream, monkeypatch: pytest.MonkeyPatch
) -> None:
    stream.publish(completed_requests(org, key, 4))

    def database_down(**kwargs: Any) -> Any:
        raise OperationalError("connection refused")

    monkeypatch.setattr(drain_module, "usage_events_write", database_down)
    with pytest.raises(OperationalError):
        usage_drain(consumer="worker-1", **stream.drain_kwargs())
    assert UsageEvent.objects.count() == 0
    assert stream.pending() == 12

    monkeypatch.setattr(drain_module, "usage_events_write", usage_events_write)
    totals = usage_drain(consumer="worker-1", **stream.drain_kwargs())

    assert totals.entries == 12
    assert UsageEvent.objects.filter(stage="completed").count() == 4
    assert stream.pending() == 0


def test_a_consumer_that_dies_mid_batch_loses_nothing_and_counts_nothing_twice(
    org: Any, key: ApiKey, stream: Stream
) -> None:
    stream.publish(completed_requests(org, key, 50))
    dead_before_commit = StreamDrainer(
        stream.client, consumer="dead-1", batch_size=60, claim_idle_ms=0, **_names(stream)
    )
    dead_before_commit.ensure_group()
    dead_before_commit._read_group(">", block_ms=None)  # read, never written, never acknowledged
    dead_after_commit = StreamDrainer(
        stream.client, consumer="dead-2", batch_size=40, claim_idle_ms=0, **_names(stream)
    )
    taken = dead_after_commit._read_group(">", block_ms=None)
    from metering.events import LifecycleEvent

    usage_events_write(events=[LifecycleEvent.from_fields(fields) for _, fields in taken if fields])  # committed...
    assert stream.pending() == 100  # ...but the consumer died before acknowledging

    totals = usage_drain(consumer="survivor", claim_idle_ms=0, **stream.drain_kwargs())

    assert totals.claimed == 100
    assert totals.entries == 150
    assert stream.pending() == 0
    assert UsageEvent.objects.filter(stage="completed", billed=True).count() == 50
    day = UsageRollup.objects.get(granularity=Granularity.DAY)
    assert (day.requests, day.billed_requests, day.outcome_ok) == (50, 50, 50)
    assert_rollups_exact()


def _names(stream: Stream) -> dict[str, str]:
    return {"stream": stream.name, "group": stream.group, "dead_stream": stream.dead}


def test_a_live_consumers_entries_are_not_taken_over(org: Any, key: ApiKey, stream: Stream) -> None:
    stream.publish(completed_requests(org, key, 2))
    busy = StreamDrainer(stream.client, consumer="busy", batch_size=100, claim_idle_ms=60_000, **_names(stream))
    busy.ensure_group()
    busy._read_group(">", block_ms=None)

    totals = usage_drain(consumer="other", claim_idle_ms=60_000, **stream.drain_kwargs())

    assert (totals.entries, totals.claimed) == (0, 0)
    assert stream.pending() == 6


def test_bad_entries_go_to_the_dead_letter_stream_and_do_not_block_the_rest(
    org: Any, key: ApiKey, stream: Stream
) -> None:
    good = completed_requests(org, key, 3)
    stream.client.xadd(stream.name, {"hello": "world"})
    stream.publish(good[:4])
    stream.client.xadd(stream.name, {**good[0].to_fields(), "stage": "teleported"})
    stream.publish(lifecycle(organization_id=999_999, key_id=key.pk)[:1])
    stream.publish(good[4:])

    totals = usage_drain(**stream.drain_kwargs())

    assert (totals.entries, totals.dead) == (12, 3)
    assert stream.pending() == 0
    assert UsageEvent.objects.filter(stage="completed").count() == 3
    dead = [{k.decode(): v.decode() for k, v in fields.items()} for _, fields in stream.client.xrange(stream.dead)]
    reasons = [entry["dead_reason"] for entry in dead]
    assert reasons[0].startswith("not a usage event: ")
    assert reasons[1:] == ["unknown stage 'teleported'", "unknown organization 999999"]
    assert dead[0]["hello"] == "world" and dead[0]["dead_from"] == stream.name


def test_a_drain_refuses_to_run_inside_a_transaction(stream: Stream) -> None:
    with transaction.atomic(), pytest.raises(RuntimeError, match="outside a transaction"):
        usage_drain(**stream.drain_kwargs())


def test_a_flushed_redis_recreates_the_group_and_goes_on(org: Any, key: ApiKey, stream: Stream) -> None:
    stream.publish(completed_requests(org, key, 1))
    usage_drain(**stream.drain_kwargs())
    stream.client.delete(stream.name)  # what FLUSHDB does to this stream and its group
    stream.publish(completed_requests(org, key, 2))

    totals = usage_drain(**stream.drain_kwargs())

    assert totals.entries == 6
    assert UsageEvent.objects.count() == 3


@override_settings(REDIS_URL="")
def test_embedded_mode_drains_the_in_process_queue_and_keeps_events_a_failed_write_did_not_take(
    org: Any, key: ApiKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    take_local_events(1_000_000)  # start empty
    publish_events_sync(completed_requests(org, key, 2))

    def database_down(**kwargs: Any) -> Any:
        raise OperationalError("database is locked")

    monkeypatch.setattr(drain_module, "usage_events_write", database_down)
    with pytest.raises(OperationalError):
        usage_drain()
    monkeypatch.setattr(drain_module, "usage_events_write", usage_events_write)

    totals = usage_drain()

    assert totals.entries == 6
    assert UsageEvent.objects.filter(stage="completed").count() == 2
    assert take_local_events(10) == []


def test_consumers_of_restarted_workers_are_forgotten_once_idle_and_empty(
    org: Any, key: ApiKey, stream: Stream
) -> None:
    from metering.drain import usage_stream_consumers_prune

    stream.publish(completed_requests(org, key, 1))
    usage_drain(consumer="old-worker", **stream.drain_kwargs())  # acknowledged everything: holds nothing
    holder = StreamDrainer(stream.client, consumer="crashed", batch_size=10, claim_idle_ms=0, **_names(stream))
    stream.publish(completed_requests(org, key, 1))
    holder._read_group(">", block_ms=None)  # holds 3 entries

    removed = usage_stream_consumers_prune(stream=stream.name, group=stream.group, idle_ms=0)

    names = {c["name"].decode() for c in stream.client.xinfo_consumers(stream.name, stream.group)}
    assert (removed, names) == (1, {"crashed"})  # a consumer still holding entries is kept for XAUTOCLAIM
