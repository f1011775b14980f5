"""The API key format: `ctx_live_` + 43 base62 characters of randomness (256 bits) + a 6-character checksum.

The checksum (CRC32 of everything before it, base62) lets the gateway tell a mistyped or truncated key from a
revoked one without a lookup, and lets secret scanners recognise leaked keys with few false positives. Only the
SHA-256 digest is stored; the key itself is shown once.
"""

from __future__ import annotations

import hashlib
import secrets
import zlib
from dataclasses import dataclass
from enum import Enum

PREFIX = "ctx_live_"
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_INDEX = {char: index for index, char in enumerate(_ALPHABET)}
_ALPHABET_SET = frozenset(_ALPHABET)  # one set comparison per presented key, not a loop over its characters
BODY_LENGTH = 43  # ceil(256 / log2(62)): 32 bytes of randomness
CHECKSUM_LENGTH = 6
KEY_LENGTH = len(PREFIX) + BODY_LENGTH + CHECKSUM_LENGTH
VISIBLE_BODY = 4  # characters of the body kept in the displayed prefix


def _base62(number: int, width: int) -> str:
    chars = []
    for _ in range(width):
        number, digit = divmod(number, 62)
        chars.append(_ALPHABET[digit])
    return "".join(reversed(chars))


def _checksum(text: str) -> str:
    return _base62(zlib.crc32(text.encode()), CHECKSUM_LENGTH)


def generate_key() -> str:
    body = _base62(secrets.randbits(256), BODY_LENGTH)
    head = PREFIX + body
    return head + _checksum(head)


def key_digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def display_prefix(key: str) -> str:
    """What pages show before the ellipsis: `ctx_live_AbCd`."""
    return key[: len(PREFIX) + VISIBLE_BODY]


def last_four(key: str) -> str:
    return key[-4:]


class KeyShape(Enum):
    OK = "ok"
    MALFORMED = "malformed"  # not our format at all (wrong prefix, length or alphabet)
    BAD_CHECKSUM = "bad_checksum"  # our format, but a character is wrong: a typo or a truncated copy


@dataclass(frozen=True, slots=True)
class ParsedKey:
    shape: KeyShape
    digest: str = ""


def parse_key(text: str) -> ParsedKey:
    """Check a presented key's shape and checksum; the digest is set only when both are right."""
    if len(text) != KEY_LENGTH or not text.startswith(PREFIX):
        return ParsedKey(KeyShape.MALFORMED)
    rest = text[len(PREFIX) :]
    if not _ALPHABET_SET.issuperset(rest):
        return ParsedKey(KeyShape.MALFORMED)
    head, checksum = text[:-CHECKSUM_LENGTH], text[-CHECKSUM_LENGTH:]
    if not secrets.compare_digest(_checksum(head), checksum):
        return ParsedKey(KeyShape.BAD_CHECKSUM)
    return ParsedKey(KeyShape.OK, key_digest(text))
