"""Request ids: `req_` + a ULID (48-bit millisecond time + 80 random bits, Crockford base32).

Sorting ids sorts requests by arrival time, which keeps the usage table's index append-mostly and lets support read
the order of events straight off the ids.
"""

from __future__ import annotations

import random
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
PREFIX = "req_"
# Two characters per 10 bits: the 130 bits of 26 characters (the top two always zero) in 13 look-ups, not 26 shifts.
_PAIRS = [first + second for first in _ALPHABET for second in _ALPHABET]
_SHIFTS = range(120, -1, -10)


def new_request_id(now_ms: int | None = None) -> str:
    millis = int(time.time() * 1000) if now_ms is None else now_ms
    # Uniqueness, not secrecy, is asked of these bits (a request id grants nothing), so the process's generator serves:
    # seeded from the OS and reseeded in forked workers, without the system call per id that os.urandom makes.
    value = (millis << 80) | random.getrandbits(80)
    return PREFIX + "".join([_PAIRS[(value >> shift) & 1023] for shift in _SHIFTS])


def request_id_time_ms(request_id: str) -> int:
    """The arrival time (ms since the epoch) encoded in a request id; ValueError if it is not one of ours."""
    if not request_id.startswith(PREFIX) or len(request_id) != len(PREFIX) + 26:
        raise ValueError("not a request id")
    value = 0
    for char in request_id[len(PREFIX) :]:
        index = _ALPHABET.find(char)
        if index < 0:
            raise ValueError("not a request id")
        value = (value << 5) | index
    return value >> 80
