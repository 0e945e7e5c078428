"""The project's exception types.

Every error a user can cause is a :class:`CallableError` whose message is one readable line
that names the field or thing at fault and what was expected. The CLI prints it and exits
non-zero; the API turns it into a 4xx JSON body.
"""

from __future__ import annotations


class CallableError(Exception):
    """Base class: a message fit to show a user as it is."""

    status_code: int = 400


class ConfigError(CallableError):
    """A setting is missing or malformed; start-up stops."""


class NotFound(CallableError):
    status_code = 404


class Conflict(CallableError):
    status_code = 409


class InvalidInput(CallableError):
    """Bad input at an edge (API body, CLI argument, YAML file).

    ``field`` names what was wrong (``text``, ``body.tools[0].name``) when it is known; the
    message starts with it too.
    """

    status_code = 422

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class NotMigrated(CallableError):
    """The database schema is behind the code."""

    status_code = 503


class VaultError(CallableError):
    """A secret could not be decrypted or a key is wrong. Never carries secret material."""

    status_code = 500


class PluginError(CallableError):
    """A plugin failed to load or broke the contract; start-up stops with its name."""


class Forbidden(CallableError):
    """Signed in, but this needs another role (a workspace owner's)."""

    status_code = 403


class TooManyRequests(CallableError):
    """A rate limit was reached; ``retry_after`` says in how many seconds to try again."""

    status_code = 429

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after
