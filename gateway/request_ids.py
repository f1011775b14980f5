"""Request ids are made in portal/request_ids.py, where the portal's pages get theirs too; re-exported for the
gateway's callers."""

from portal.request_ids import PREFIX, new_request_id, request_id_time_ms

__all__ = ["PREFIX", "new_request_id", "request_id_time_ms"]
