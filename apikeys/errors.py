from __future__ import annotations


class ApiKeyError(Exception):
    """A refused key operation. `field` names the input to fix, when there is one; the message is user-safe."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field
