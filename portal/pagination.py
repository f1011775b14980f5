"""Cursor pagination that answers a cursor it did not give out with a 400 naming `cursor`.

DRF decodes the cursor's base64 and numbers itself (a bad one is its 404 "Invalid cursor"), but passes the position
inside to the database as it came: a forged position (`p=2024`, a NUL) was a ValidationError or DataError while the
query ran, a server error. Here the position is checked against the ordering field before any query.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Model, QuerySet
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.pagination import Cursor, CursorPagination
from rest_framework.request import Request

BAD_CURSOR = "Not a cursor this API gave out: follow the `next` or `previous` link of a page, or leave it out."


class CheckedCursorPagination(CursorPagination):
    _model: type[Model] | None = None

    def paginate_queryset(self, queryset: QuerySet[Any], request: Request, view: Any = None) -> list[Any] | None:
        self._model = queryset.model  # decode_cursor, called in there, checks the position against its field
        return super().paginate_queryset(queryset, request, view)

    def decode_cursor(self, request: Request) -> Cursor | None:
        try:
            cursor = super().decode_cursor(request)
        except NotFound:
            raise ValidationError({self.cursor_query_param: [BAD_CURSOR]}) from None
        if cursor is not None and cursor.position is not None and not self._position_fits(cursor.position):
            raise ValidationError({self.cursor_query_param: [BAD_CURSOR]})
        return cursor

    def _position_fits(self, position: str) -> bool:
        if "\x00" in position or self._model is None:
            return False
        field = self._model._meta.get_field(self.ordering[0].lstrip("-"))
        try:
            value = field.to_python(position)  # type: ignore[union-attr]
        except (DjangoValidationError, ValueError, OverflowError):
            return False
        # Positions are given out in UTC. Another offset could take the time out of PostgreSQL's range (a DataError
        # while the query runs), and a naive time would be read in the server's zone.
        return not isinstance(value, datetime) or value.utcoffset() == timedelta(0)
