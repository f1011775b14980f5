"""Names of admission counters. Every counter of one scope shares the hash tag `{org:<scope>}`, so one Lua call
touches one Redis Cluster slot; the in-process engine uses the same names so `reset` means the same in both."""

from __future__ import annotations

from billing.admission.types import Limit

PREFIX = "adm:"


def scope_prefix(scope: str) -> str:
    return f"{PREFIX}{{org:{scope}}}:"


def counter_key(scope: str, limit: Limit) -> str:
    return scope_prefix(scope) + limit.key
