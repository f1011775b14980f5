from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from portal.request_ids import new_request_id, request_id_time_ms

ROOT = Path(__file__).resolve().parents[2]


def test_request_ids_sort_by_arrival_time() -> None:
    ids = [new_request_id(now_ms=1_700_000_000_000 + step) for step in (0, 1, 2, 1000, 86_400_000)]
    assert ids == sorted(ids)


def test_request_ids_are_unique_within_one_millisecond() -> None:
    ids = {new_request_id(now_ms=1_700_000_000_000) for _ in range(10_000)}
    assert len(ids) == 10_000


def test_a_forked_worker_does_not_repeat_its_parents_ids() -> None:
    """Gunicorn forks its workers: ids made in the same millisecond by two of them must still differ. The fork runs in
    a fresh, single-threaded interpreter (forking the test process, which has threads, could deadlock the child)."""
    script = textwrap.dedent("""
        import os
        from portal.request_ids import new_request_id
        read, write = os.pipe()
        if os.fork() == 0:
            os.write(write, " ".join(new_request_id(now_ms=1) for _ in range(100)).encode())
            os._exit(0)
        os.close(write)
        os.wait()
        with os.fdopen(read) as pipe:
            child = set(pipe.read().split())
        parent = {new_request_id(now_ms=1) for _ in range(100)}
        print(len(child), len(child & parent))
    """)
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.split() == ["100", "0"]  # the child made 100 ids, none of them the parent's


def test_the_arrival_time_can_be_read_back() -> None:
    assert request_id_time_ms(new_request_id(now_ms=1_795_000_000_123)) == 1_795_000_000_123


@pytest.mark.parametrize("text", ["req_short", "abc_01HZZZZZZZZZZZZZZZZZZZZZZZ", "req_" + "U" * 26])
def test_other_strings_are_not_request_ids(text: str) -> None:
    with pytest.raises(ValueError):
        request_id_time_ms(text)
