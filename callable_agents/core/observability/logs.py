"""Structured logs: ``CALLABLE_LOG_FORMAT=json`` writes one JSON object a line.

Each line carries the time, level, logger and message, and the ids the pipeline has put in
the log context at that point (:func:`bind_log_context`): ``workspace_id``, ``channel``
(the channel's kind), ``channel_id``, ``conversation_id``, ``message_id``, ``job_id`` and
``job_kind``. The context is a context variable, so it follows a request or a job through
every ``await`` and into the tasks it starts, and never leaks into another's.

Secrets are never logged: nothing here adds a value that is not an id, and the code
logging around secrets logs their names, never their values (a test runs a turn and a send
with an integration connected and searches every line for the secret values).
"""

from __future__ import annotations

import json
import logging
import sys
import traceback
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar, Token
from datetime import datetime, timezone
from types import MappingProxyType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from callable_agents.core.config import Settings

LogValue = str | int
_EMPTY: Mapping[str, LogValue] = MappingProxyType({})
_CONTEXT: ContextVar[Mapping[str, LogValue]] = ContextVar("callable_log_context", default=_EMPTY)


def bind_log_context(**fields: LogValue | None) -> Token[Mapping[str, LogValue]]:
    """Add ``fields`` (None values skipped) to the log context of this task from here on."""
    merged = {**_CONTEXT.get()}
    for name, value in fields.items():
        if value is not None:
            merged[name] = value
    return _CONTEXT.set(merged)


def reset_log_context(token: Token[Mapping[str, LogValue]]) -> None:
    _CONTEXT.reset(token)


@contextmanager
def log_context(**fields: LogValue | None) -> Iterator[None]:
    """``fields`` in the log context inside the block."""
    token = bind_log_context(**fields)
    try:
        yield
    finally:
        _CONTEXT.reset(token)


def current_log_context() -> Mapping[str, LogValue]:
    return _CONTEXT.get()


# What every line has; a context field of the same name never replaces them.
_RESERVED = frozenset({"time", "level", "logger", "message", "exception"})


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (UTC, ISO 8601), level, logger, message, the log
    context's ids and, for an exception, its formatted traceback."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, value in _CONTEXT.get().items():
            if name not in _RESERVED:
                line[name] = value
        if record.exc_info:
            line["exception"] = "".join(traceback.format_exception(*record.exc_info)).rstrip()
        return json.dumps(line, ensure_ascii=False, default=str)


def configure_logging(settings: Settings) -> None:
    """Set the root logger for a serving process: JSON lines on stderr when
    ``CALLABLE_LOG_FORMAT=json`` (replacing other handlers), at ``CALLABLE_LOG_LEVEL``."""
    root = logging.getLogger()
    if settings.log_format != "json":
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(settings.log_level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        # uvicorn's own handlers would print plain text: its records go to the root's.
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
