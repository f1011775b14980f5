"""The admission engine: one atomic decision over a request's limits (per-key rate, then the organization's
allowances), used by the gateway to admit requests and by every page that shows what is left.

Design, error bound, memory and measured speed: docs/admission.md.
"""

from __future__ import annotations

from billing.admission.engine import get_engine
from billing.admission.types import UNAVAILABLE, AdmissionEngine, Decision, Journal, Limit, LimitState

__all__ = ["UNAVAILABLE", "AdmissionEngine", "Decision", "Journal", "Limit", "LimitState", "get_engine"]
