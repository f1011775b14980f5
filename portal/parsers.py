"""The management API's one body parser (REST_FRAMEWORK's DEFAULT_PARSER_CLASSES): JSON read with the limits of
portal/json_input.py, so a body too deep, or holding NUL or a lone surrogate anywhere, is a 400 naming the value
at fault in DRF's field-error shape (`{"metadata.team": ["..."]}`) rather than a server error at save or render.

JSON only: the API is documented as JSON, and a form-encoded body would reach the serializers unchecked. At most
MAX_BODY_BYTES: no body of this API needs more than a few KiB, and the checks cost time in proportion to the size.
"""

from __future__ import annotations

from typing import IO, Any

from rest_framework.exceptions import APIException, ParseError, ValidationError
from rest_framework.parsers import JSONParser, get_encoding

from portal.json_input import JsonInputError, parse_json

MAX_BODY_BYTES = 64 * 1024


class BodyTooLarge(APIException):
    status_code = 413
    default_detail = f"The body is larger than {MAX_BODY_BYTES // 1024} KiB; no request of this API needs that much."
    default_code = "body_too_large"


class CheckedJSONParser(JSONParser):
    def parse(self, stream: IO[bytes], media_type: str | None = None, parser_context: Any = None) -> Any:
        encoding = get_encoding(parser_context or {})
        raw = stream.read(MAX_BODY_BYTES + 1)
        if len(raw) > MAX_BODY_BYTES:
            raise BodyTooLarge()
        try:
            return parse_json(raw.decode(encoding))
        except JsonInputError as error:
            raise ValidationError({error.path or "non_field_errors": [error.message]}) from None
        except ValueError as error:  # not JSON, or not in the declared encoding: DRF's own answer
            raise ParseError(f"JSON parse error - {error}") from None
