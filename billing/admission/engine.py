"""Which admission engine this process uses: Redis when REDIS_URL is set, else the in-process one.

Both are process-wide singletons. The choice is read from settings on every call (a dictionary lookup), so a test
that overrides REDIS_URL gets the matching engine; production never changes it while running.
"""

from __future__ import annotations

import threading

from billing.admission.memory_engine import MemoryAdmissionEngine
from billing.admission.redis_engine import RedisAdmissionEngine
from billing.admission.types import AdmissionEngine
from portal.redis import redis_url

_lock = threading.Lock()
_memory: MemoryAdmissionEngine | None = None
_redis: RedisAdmissionEngine | None = None


def get_engine() -> AdmissionEngine:
    global _memory, _redis
    with _lock:
        if redis_url() is None:
            if _memory is None:
                _memory = MemoryAdmissionEngine()
            return _memory
        if _redis is None:
            _redis = RedisAdmissionEngine()
        return _redis
