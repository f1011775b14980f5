"""OpenAPI description of the manage-key authentication (loaded by ApikeysConfig.ready)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "apikeys.authentication.ApiKeyAuthentication"
    name = "manageKey"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "ctx_live_ key with the manage scope",
        }


_DETAIL = {"$ref": "#/components/schemas/ErrorDetail"}


def _error(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema or _DETAIL}}}


def error_responses(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """Document the refusals every management operation can answer (SPECTACULAR_SETTINGS' postprocessing hook).

    drf-spectacular lists only the success response; a client (or a generated SDK) must also know the 400 of a bad
    field, the 401 of a bad key, the 403 of a missing role or scope and the 404 of another organization's object or
    `?organization=` slug, in DRF's shapes.
    """
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas["ErrorDetail"] = {
        "type": "object",
        "properties": {"detail": {"type": "string"}},
        "required": ["detail"],
    }
    schemas["ValidationErrors"] = {
        "type": "object",
        "description": "Each field at fault (or `non_field_errors`, or `detail` for a body that is not JSON) with "
        "what is wrong with it. A value the body parser refuses (nested more than 32 levels, NUL or a lone surrogate "
        "in a key or string, a number of more than 100 characters) is named by its path: `metadata.team`, "
        "`allowed_models[2]`.",
        # A list of messages per field, a message, or for list and object fields the same again per item.
        "additionalProperties": {"oneOf": [{"type": "array"}, {"type": "string"}, {"type": "object"}]},
    }
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            takes_input = "requestBody" in operation or any(
                parameter.get("in") == "query" for parameter in operation.get("parameters", [])
            )
            if takes_input:
                responses.setdefault(
                    "400", _error("A field is missing or not valid.", {"$ref": "#/components/schemas/ValidationErrors"})
                )
            responses.setdefault("401", _error("No credentials, or a key that is not valid, revoked or expired."))
            responses.setdefault("403", _error("The caller may not do this (role, scope, or a missing CSRF token)."))
            responses.setdefault("404", _error("No such object in the caller's organization, or no such organization."))
            if "requestBody" in operation:
                responses.setdefault("415", _error("The body is not in a supported format (send JSON)."))
                responses.setdefault("413", _error("The body is larger than 64 KiB."))
    return result
