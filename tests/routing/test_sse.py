"""The incremental SSE parser: whatever way an upstream's bytes are cut into reads, the same events come out."""

from __future__ import annotations

import pytest

from routing.adapters.sse import MAX_EVENT_BYTES, SSEError, SSEMessage, SSEParser


def parse(reads: list[bytes]) -> list[SSEMessage]:
    parser = SSEParser()
    messages = []
    for read in reads:
        messages.extend(parser.feed(read))
    return [*messages, *parser.close()]


def every_split(data: bytes) -> list[list[bytes]]:
    return [[data[:cut], data[cut:]] for cut in range(len(data) + 1)]


STREAM = (
    'data: {"a": "é"}\r\n\r\n'  # CRLF, and a two-byte character to cut in half
    ": keep-alive\n\n"  # a comment
    "event: error\ndata: line one\ndata: line two\n\r"  # an event type, multi-line data, LF then CR
    "data: [DONE]\r\r"  # CR only, with the last CR at the very end of the stream
).encode()
EXPECTED = [
    SSEMessage('{"a": "é"}'),
    SSEMessage("line one\nline two", event="error"),
    SSEMessage("[DONE]"),
]


def test_lf_crlf_and_cr_line_ends_comments_and_multi_line_data() -> None:
    assert parse([STREAM]) == EXPECTED


@pytest.mark.parametrize("reads", every_split(STREAM))
def test_a_read_boundary_anywhere_even_inside_a_character_or_a_crlf_changes_nothing(reads: list[bytes]) -> None:
    assert parse(reads) == EXPECTED


LF_STREAM = (
    'data: {"a": "é"}\n\n: keep-alive\n\nevent: error\ndata: line one\ndata: line two\n\ndata: [DONE]\n\n'.encode()
)


@pytest.mark.parametrize("reads", every_split(LF_STREAM))
def test_lines_ending_in_lf_alone_parse_the_same_wherever_the_reads_are_cut(reads: list[bytes]) -> None:
    assert parse(reads) == EXPECTED


def test_an_endless_lf_stream_line_is_refused_too() -> None:
    parser = SSEParser()
    with pytest.raises(SSEError):
        parser.feed(b"data: one\n" + b"data: " + b"x" * (MAX_EVENT_BYTES + 1))


def test_one_byte_at_a_time() -> None:
    assert parse([bytes([byte]) for byte in STREAM]) == EXPECTED


def test_an_event_is_not_delivered_before_its_blank_line() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: partial") == []
    assert parser.feed(b"\n") == []
    assert parser.feed(b"\n") == [SSEMessage("partial")]


def test_the_last_event_without_a_blank_line_is_delivered_when_the_stream_ends() -> None:
    assert parse([b"data: one\n\ndata: [DONE]"]) == [SSEMessage("one"), SSEMessage("[DONE]")]


def test_an_endless_line_is_refused_rather_than_buffered_forever() -> None:
    parser = SSEParser()
    with pytest.raises(SSEError):
        parser.feed(b"data: " + b"x" * (MAX_EVENT_BYTES + 1))
