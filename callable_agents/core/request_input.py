"""Input hardening for every JSON body and query parameter the server accepts.

Python's ``json`` accepts what our storage and code cannot take: nesting deep enough to
exhaust the interpreter's recursion (``RecursionError``), number literals past the
4,300-digit limit of ``int()`` (``ValueError``), lone UTF-16 surrogates such as ``"\\ud800"``
(valid JSON escapes that no UTF-8 database column can store), and integers past a
database's 64-bit columns. Every entry point parses through :func:`parse_json` and reads
integers through :func:`parse_int`, so such input is refused with a 422 naming the field,
before anything reaches the database.
"""

from __future__ import annotations

import json
import re
from typing import Any

from callable_agents.core.errors import InvalidInput

MAX_JSON_DEPTH = 32  # far more than any of our bodies needs; far less than the recursion limit
MAX_NUMBER_CHARS = 32  # a 64-bit integer has 19 digits; a float with exponent fits too
BIGINT_MAX = 2**63 - 1  # the largest value of a 64-bit database column (ids, cursors)
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def parse_json(raw: bytes | str, *, field: str = "body", expected: str = "a JSON object") -> Any:
    """The parsed JSON value, or :class:`InvalidInput` naming ``field`` (or a path inside it).

    ``expected`` says what the caller wants, for the message when the text is not JSON.
    """
    try:
        value = json.loads(raw, parse_int=_bounded_int, parse_float=_bounded_float, parse_constant=_no_constant)
    except RecursionError:
        raise InvalidInput(f"{field}: expected JSON nested at most {MAX_JSON_DEPTH} levels deep", field=field) from None
    except _NumberTooLong:
        raise InvalidInput(f"{field}: expected numbers of at most {MAX_NUMBER_CHARS} characters", field=field) from None
    except _NotANumber as exc:
        raise InvalidInput(f"{field}: expected a JSON number, got {exc}", field=field) from None
    except (ValueError, UnicodeDecodeError):
        raise InvalidInput(f"{field}: expected {expected} (the body is not valid JSON)", field=field) from None
    check_json_value(value, field)
    return value


def check_json_value(value: Any, field: str) -> None:
    """Refuse nesting past :data:`MAX_JSON_DEPTH` and strings with lone surrogates, by path."""
    pending: list[tuple[Any, str, int]] = [(value, field, 0)]
    while pending:
        item, path, depth = pending.pop()
        if isinstance(item, str):
            check_text(item, path)
            continue
        if not isinstance(item, (dict, list)):
            continue
        if depth >= MAX_JSON_DEPTH:
            raise InvalidInput(f"{field}: expected JSON nested at most {MAX_JSON_DEPTH} levels deep", field=field)
        if isinstance(item, dict):
            for key, child in item.items():
                check_text(key, f"{path}.{key[:40]}")
                pending.append((child, f"{path}.{key[:40]}", depth + 1))
        else:
            pending.extend((child, f"{path}[{index}]", depth + 1) for index, child in enumerate(item))


def check_text(value: str, field: str) -> str:
    """``value`` if it is text a database can store; else :class:`InvalidInput` naming ``field``."""
    if _LONE_SURROGATE.search(value):
        raise InvalidInput(f"{field}: expected text without lone UTF-16 surrogates (e.g. \\ud800)", field=field)
    if "\x00" in value:
        raise InvalidInput(f"{field}: expected text without NUL characters", field=field)
    return value


def parse_int(raw: str | None, field: str, *, default: int, minimum: int = 0, maximum: int = BIGINT_MAX) -> int:
    """A query parameter as an integer within ``minimum..maximum`` (``default`` when absent)."""
    if raw is None or raw == "":
        return default
    value: int | None
    try:
        value = int(raw) if len(raw) <= MAX_NUMBER_CHARS else None
    except ValueError:
        value = None
    if value is None or not minimum <= value <= maximum:
        raise InvalidInput(f"{field}: expected an integer {minimum}..{maximum}, got {raw[:40]!r}", field=field)
    return value


class _NumberTooLong(ValueError):
    pass


class _NotANumber(ValueError):
    pass


def _bounded_int(text: str) -> int:
    if len(text) > MAX_NUMBER_CHARS:
        raise _NumberTooLong
    return int(text)


def _bounded_float(text: str) -> float:
    if len(text) > MAX_NUMBER_CHARS:
        raise _NumberTooLong
    return float(text)


def _no_constant(text: str) -> Any:
    raise _NotANumber(text)  # NaN, Infinity: not JSON, and no column stores them
