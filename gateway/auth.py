"""Pipeline steps 1 to 3: find the presented key, look it up in the hot cache, check its status and expiry.

Every `/v1` endpoint authenticates through `Gateway.authenticate` (gateway/state.py), which calls `authenticate` here
and counts the failures."""

from __future__ import annotations

from dataclasses import dataclass

from apikeys.keyformat import KEY_LENGTH, KeyShape, key_digest, parse_key
from apikeys.records import KeyRecord
from gateway.keycache import KeyCache
from gateway.keyscan import InvalidKeyGuard
from gateway.responses import Header, Send, send_error


@dataclass(frozen=True, slots=True)
class AuthFailure:
    code: str
    message: str | None = None
    retry_after_s: int | None = None  # too_many_invalid_keys: when this address may try again
    record: KeyRecord | None = None  # a real key refused for its state (revoked, expired): whose request it was


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


_NO_KEY = AuthFailure("invalid_api_key", "No API key was sent. Send it as 'Authorization: Bearer ctx_live_...'.")


async def authenticate(
    headers: dict[bytes, bytes], cache: KeyCache, now_ms: int, guard: InvalidKeyGuard, address: str
) -> KeyRecord | AuthFailure:
    """The three checks in order, with the invalid-key guard around them: an address over its limit of invalid keys
    is refused unless it presents a key this worker already holds active."""
    wait = guard.blocked_for(address)
    key = presented_key(headers)  # 1: a key is present
    found = _NO_KEY if key is None else await _known(key, cache, blocked=wait is not None)  # 2: it is known
    if wait is None and isinstance(found, AuthFailure):
        wait = await guard.failed(address)
        if wait is None:
            return found
    return _active(None if isinstance(found, AuthFailure) else found, now_ms, wait)  # 3: it is active


async def _known(key: str, cache: KeyCache, *, blocked: bool) -> KeyRecord | AuthFailure | None:
    """Step 2: the key's record, or why there is none (None: the address is refused, nothing was looked up)."""
    # A key this process holds had its shape and checksum checked when first seen: that look-up comes first.
    record = cache.peek(key_digest(key)) if len(key) == KEY_LENGTH else None
    return record if record is not None else await _look_up(key, cache, blocked=blocked)


def _active(record: KeyRecord | None, now_ms: int, wait: int | None) -> KeyRecord | AuthFailure:
    """Step 3: the record is neither revoked nor expired; `wait` set: the address is refused unless it is."""
    state = record.state(now_ms) if record is not None else None
    if wait is not None and state != "active":
        return AuthFailure(
            "too_many_invalid_keys",
            f"Too many requests with invalid API keys came from your address. Retry in {wait} s.",
            retry_after_s=wait,
        )
    assert record is not None
    if state == "revoked":
        return AuthFailure("key_revoked", record=record)
    if state == "expired":
        return AuthFailure("key_expired", record=record)
    return record


async def _look_up(key: str, cache: KeyCache, *, blocked: bool) -> KeyRecord | AuthFailure | None:
    """A key not held in this process: its shape and checksum first (a typo never reaches Redis or the database),
    then the cache behind the process; a refused address reaches neither (None)."""
    parsed = parse_key(key)
    if parsed.shape is KeyShape.MALFORMED:
        return AuthFailure("invalid_api_key", "This is not a Cortensor Portal API key; keys start with 'ctx_live_'.")
    if parsed.shape is KeyShape.BAD_CHECKSUM:
        return AuthFailure(
            "invalid_api_key", "This API key has a typo: its checksum does not match. Copy the whole key again."
        )
    if blocked:
        return None
    record = await cache.get(parsed.digest)
    return AuthFailure("invalid_api_key", "This API key does not exist.") if record is None else record


def failure_headers(failure: AuthFailure) -> list[Header]:
    return [] if failure.retry_after_s is None else [(b"retry-after", str(failure.retry_after_s).encode())]


async def send_auth_failure(send: Send, failure: AuthFailure, request_id: str) -> None:
    await send_error(send, failure.code, request_id, message=failure.message, extra_headers=failure_headers(failure))
