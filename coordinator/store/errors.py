"""What the store refuses, in storage terms: the rule a write or read broke, with a sentence a
person can act on and, when one input field is at fault, its name.

The store knows nothing of HTTP. `coordinator.errors` gives each of these a status and renders it
as a problem response; its HTTP errors of the same name are subclasses of these, so code that
catches a store error also catches the HTTP layer's.
"""

from __future__ import annotations


class StoreError(Exception):
    """A storage rule a caller broke."""

    def __init__(self, detail: str, *, field: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.field = field


class NotFound(StoreError):
    """The record named does not exist (or is not visible to the caller)."""


class Conflict(StoreError):
    """The write contradicts what is stored (a duplicate, a state that forbids it)."""


class Invalid(StoreError):
    """A value the store cannot keep."""


class Unauthorized(StoreError):
    """A credential that is unknown, expired or revoked."""


class Forbidden(StoreError):
    """A valid credential whose role or show may not do this."""


class Unavailable(StoreError):
    """Nothing can serve the request now (no session master, say)."""
