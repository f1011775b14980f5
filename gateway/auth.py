"""Pipeline steps 1 to 3: find the presented key, look it up in the hot cache, check its status and expiry."""

from __future__ import annotations

from dataclasses import dataclass

from apikeys.keyformat import KeyShape, parse_key
from apikeys.records import KeyRecord
from gateway.keycache import KeyCache


@dataclass(frozen=True, slots=True)
class AuthFailure:
    code: str
    message: str | None = None


def presented_key(headers: dict[bytes, bytes]) -> str | None:
    """`Authorization: Bearer <key>`, or `x-api-key: <key>` (what some SDKs send)."""
    value = headers.get(b"authorization")
    if value is not None:
        scheme, _, token = value.decode("latin-1").partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
        return None
    value = headers.get(b"x-api-key")
    if value is not None and value.strip():
        return value.decode("latin-1").strip()
    return None


async def authenticate(headers: dict[bytes, bytes], cache: KeyCache, now_ms: int) -> KeyRecord | AuthFailure:
    key = presented_key(headers)
    if key is None:
        return AuthFailure("invalid_api_key", "No API key was sent. Send it as 'Authorization: Bearer ctx_live_...'.")
    parsed = parse_key(key)
    if parsed.shape is KeyShape.MALFORMED:
        return AuthFailure("invalid_api_key", "This is not a Cortensor Portal API key; keys start with 'ctx_live_'.")
    if parsed.shape is KeyShape.BAD_CHECKSUM:
        return AuthFailure(
            "invalid_api_key",
            "This API key has a typo: its checksum does not match. Copy the whole key again.",
        )
    record = await cache.get(parsed.digest)
    if record is None:
        return AuthFailure("invalid_api_key", "This API key does not exist.")
    state = record.state(now_ms)
    if state == "revoked":
        return AuthFailure("key_revoked")
    if state == "expired":
        return AuthFailure("key_expired")
    return record
