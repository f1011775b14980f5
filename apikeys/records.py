"""What the gateway needs to know about a key, as a small immutable record it can cache anywhere.

The record is built from the database by `apikeys.selectors.apikey_record_by_digest`, cached by the gateway in
process and in Redis under `record_cache_key(digest)`, and dropped from both when a service changes the key.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

CACHE_TTL_SECONDS = 300  # a safety net only: changes are pushed out by invalidation within a second


@dataclass(frozen=True, slots=True)
class KeyRecord:
    id: int
    organization_id: int
    created_by_id: int | None  # usage is attributed to the key's creator
    status: str  # stored status: active or revoked (expiry is judged from expires_at_ms)
    expires_at_ms: int | None
    scopes: tuple[str, ...]
    allowed_models: tuple[str, ...]
    rate_limit_requests: int | None

    def state(self, now_ms: int) -> str:
        if self.status == "revoked":
            return "revoked"
        if self.status == "expired" or (self.expires_at_ms is not None and self.expires_at_ms <= now_ms):
            return "expired"
        return "active"

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> KeyRecord:
        data = json.loads(text)
        data["scopes"] = tuple(data["scopes"])
        data["allowed_models"] = tuple(data["allowed_models"])
        return cls(**data)


def record_cache_key(digest: str) -> str:
    return f"apikey:{digest}"
