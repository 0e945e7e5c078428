"""A submitted form: its values, kept to show again as typed, and an error per field.

Pages validate through the service layer (the same functions as the API and CLI); what they
raise becomes field errors here: an ``InvalidInput`` names its field, a ``SpecError``
carries one problem per field, a pydantic ``ValidationError`` its locations. Secrets are
never put back into a form (:meth:`Form.without`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError
from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request

from callable_agents.core.errors import CallableError, InvalidInput

GENERAL = "_form"  # the key of an error that belongs to no one field


@dataclass
class Form:
    values: dict[str, str] = field(default_factory=dict)
    lists: dict[str, list[str]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, form: FormData) -> Form:
        values: dict[str, str] = {}
        lists: dict[str, list[str]] = {}
        for key, value in form.multi_items():
            if isinstance(value, UploadFile) or key == "csrf_token":
                continue
            values.setdefault(key, value)
            lists.setdefault(key, []).append(value)
        return cls(values=values, lists=lists)

    @classmethod
    async def read(cls, request: Request) -> Form:
        return cls.of(await request.form())

    def get(self, key: str, default: str = "") -> str:
        return self.values.get(key, default)

    def text(self, key: str, *, required: bool = False, label: str | None = None, max_length: int = 10_000) -> str:
        """The field's value, stripped; records an error (and returns "") when it is wrong."""
        value = self.values.get(key, "").strip()
        if required and not value:
            self.errors[key] = f"{label or key}: this field is required"
        elif len(value) > max_length:
            self.errors[key] = f"{label or key}: expected at most {max_length} characters"
        return value

    def checked(self, key: str) -> bool:
        return self.values.get(key) in ("on", "true", "1", "yes")

    def many(self, key: str) -> list[str]:
        return [value for value in self.lists.get(key, []) if value]

    def error(self, key: str, message: str) -> None:
        self.errors.setdefault(key, message)

    def fail(self, exc: CallableError | ValidationError, *, prefix: str = "") -> None:
        """Record what the service layer refused, on the fields it names."""
        for key, message in field_errors(exc):
            self.errors.setdefault(prefix + key if key != GENERAL else GENERAL, message)

    def without(self, keys: Iterable[str]) -> Form:
        """The same form with ``keys`` (secrets) emptied, to render it again."""
        dropped = set(keys)
        return Form(
            values={k: v for k, v in self.values.items() if k not in dropped},
            lists={k: v for k, v in self.lists.items() if k not in dropped},
            errors=dict(self.errors),
        )

    @property
    def ok(self) -> bool:
        return not self.errors


def _dotted(loc: Iterable[Any]) -> str:
    return ".".join(str(part) for part in loc)


def field_errors(exc: CallableError | ValidationError) -> list[tuple[str, str]]:
    """``(field, message)`` pairs for an error from the service layer or pydantic."""
    if isinstance(exc, ValidationError):
        return [(_dotted(error["loc"]) or GENERAL, f"{_dotted(error['loc'])}: {error['msg']}") for error in exc.errors()]
    problems = getattr(exc, "problems", None)
    if problems:
        pairs: list[tuple[str, str]] = []
        for problem in problems:
            loc = getattr(problem, "loc", ())
            message = getattr(problem, "message", str(problem))
            key = _dotted(loc) or GENERAL
            pairs.append((key, f"{key}: {message}" if key != GENERAL else message))
        return pairs
    if isinstance(exc, InvalidInput) and exc.field:
        return [(exc.field, str(exc))]
    message = str(exc)
    head, sep, _ = message.partition(":")
    if sep and head and " " not in head.strip() and len(head) < 60:
        return [(head.strip(), message)]
    return [(GENERAL, message)]
