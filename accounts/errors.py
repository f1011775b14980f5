"""Domain errors of accounts; views turn them into messages or status codes."""

from __future__ import annotations


class AccountsError(Exception):
    """A refused account or team action; the message is safe to show to the user."""


class LastOwnerError(AccountsError):
    pass


class InvitationError(AccountsError):
    pass


class SiweError(AccountsError):
    pass


class SignUpUnavailable(AccountsError):
    """The account or organization cannot be created now through no fault of the user (the operator's plan for
    wallet-only accounts is missing); views answer 503."""
