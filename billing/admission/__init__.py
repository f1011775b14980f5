"""The admission engine: one atomic decision over a request's limits (per-key rate, then the organization's
allowances), used by the gateway to admit requests and by every page that shows what is left.

Design, error bound, memory and measured speed: docs/admission.md.

This package's public interface is what this module exports: code outside billing/admission imports from
`billing.admission` only, never from its submodules (the "admission is imported through its interface" contract in
pyproject.toml). Tests and benchmarks may reach the engines themselves.
"""

from __future__ import annotations

from billing.admission.engine import get_engine
from billing.admission.types import UNAVAILABLE, AdmissionEngine, Decision, Journal, Limit, LimitState
from billing.admission.window import bucket_label

__all__ = [
    "UNAVAILABLE",
    "AdmissionEngine",
    "Decision",
    "Journal",
    "Limit",
    "LimitState",
    "bucket_label",  # the bucket rule, for metering's check of counters against the ledger
    "get_engine",
]
