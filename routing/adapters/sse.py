"""An incremental Server-Sent Events parser: fed raw bytes as they arrive, it returns the complete events.

Reads split events, lines and even UTF-8 characters anywhere; lines may end in LF, CRLF or CR (a CR at the end of a
read waits for the next read, in case an LF follows). Only `data` and `event` fields matter to us.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_EVENT_BYTES = 4 * 1024 * 1024
_LINE_END = re.compile(rb"\r\n|\r|\n")


class SSEError(Exception):
    """The byte stream cannot be SSE (an event larger than MAX_EVENT_BYTES)."""


@dataclass(slots=True)
class SSEMessage:
    data: str
    event: str = "message"


class SSEParser:
    def __init__(self) -> None:
        self._buffer = b""
        self._data: list[str] = []
        self._event = ""
        self._size = 0

    def feed(self, chunk: bytes) -> list[SSEMessage]:
        self._buffer += chunk
        messages: list[SSEMessage] = []
        if b"\r" not in self._buffer:
            # The common case, lines ending in LF alone: split in C rather than searching line by line.
            *lines, self._buffer = self._buffer.split(b"\n")
            for line in lines:
                message = self._line(line)
                if message is not None:
                    messages.append(message)
            if len(self._buffer) + self._size > MAX_EVENT_BYTES:
                raise SSEError(f"an event is larger than {MAX_EVENT_BYTES} bytes")
            return messages
        position = 0
        while True:
            match = _LINE_END.search(self._buffer, position)
            if match is None or (match.group() == b"\r" and match.end() == len(self._buffer)):
                break
            message = self._line(self._buffer[position : match.start()])
            if message is not None:
                messages.append(message)
            position = match.end()
        self._buffer = self._buffer[position:]
        if len(self._buffer) + self._size > MAX_EVENT_BYTES:
            raise SSEError(f"an event is larger than {MAX_EVENT_BYTES} bytes")
        return messages

    def close(self) -> list[SSEMessage]:
        """The end of the stream: an event whose blank line never came is still delivered (servers that end with
        `data: [DONE]` and no blank line are common)."""
        messages = []
        if self._buffer:
            line, self._buffer = self._buffer.rstrip(b"\r"), b""
            message = self._line(line)
            if message is not None:
                messages.append(message)
        if self._data:
            messages.append(self._dispatch())
        return messages

    def _line(self, raw: bytes) -> SSEMessage | None:
        if not raw:
            if self._data:
                return self._dispatch()
            self._reset()
            return None
        line = raw.decode("utf-8", errors="replace")
        if line.startswith(":"):
            return None
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "data":
            self._data.append(value)
            self._size += len(raw)
        elif field == "event":
            self._event = value
        return None

    def _dispatch(self) -> SSEMessage:
        message = SSEMessage(data="\n".join(self._data), event=self._event or "message")
        self._reset()
        return message

    def _reset(self) -> None:
        self._data, self._event, self._size = [], "", 0
