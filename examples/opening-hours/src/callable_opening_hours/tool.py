"""The ``opening_hours`` tool: is the business open now (or at ``when``), until when, and when next.

The model calls it with no arguments for "are you open?", or with ``when`` (an ISO 8601
date-time) for "are you open on Christmas Eve at 17:00?". A ``when`` without a UTC offset is
the business's local time. ``when`` is also the only way to choose the clock: without it the
tool reads the current time, so tests pin the instant through the argument, as the model does.

Bad arguments come back as text naming the argument, so the model can correct its call.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from callable_agents.plugin import ToolContext

from callable_opening_hours.answer import describe_status
from callable_opening_hours.config import DAYS, OpeningHoursConfig
from callable_opening_hours.schedule import UTC, local_instant, opening_status

if TYPE_CHECKING:
    from langchain_core.tools import BaseTool

MIN_YEAR = 1970
MAX_YEAR = 2999
MAX_WHEN_CHARS = 40
WHEN_EXPECTED = (
    "expected an ISO 8601 date-time like 2025-12-24T17:30 (the business's local time) "
    "or 2025-12-24T17:30+01:00, or leave it out for now"
)
NOW_WORDS = frozenset({"", "now"})


class WhenError(ValueError):
    """The ``when`` argument is not a usable date-time; the message names it and what was expected."""


def resolve_when(value: object, zone: ZoneInfo) -> dt.datetime | None:
    """The instant ``when`` names, or ``None`` for "now" (left out, null, empty or ``now``)."""
    if value is None or (isinstance(value, str) and value.strip().lower() in NOW_WORDS):
        return None
    if not isinstance(value, str):
        raise WhenError(f"when: {WHEN_EXPECTED}; got {type(value).__name__}")
    text = value.strip()
    if len(text) > MAX_WHEN_CHARS:
        raise WhenError(f"when: {WHEN_EXPECTED}; got {len(text)} characters")
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        raise WhenError(f"when: {WHEN_EXPECTED}; got {text!r}") from None
    if not MIN_YEAR <= parsed.year <= MAX_YEAR:
        raise WhenError(f"when: expected a year from {MIN_YEAR} to {MAX_YEAR}, got {parsed.year}")
    if parsed.tzinfo is None:
        return local_instant(parsed, zone)
    return parsed


def answer(config: OpeningHoursConfig, arguments: dict[str, Any], now: dt.datetime) -> str:
    """What the model is told for one call; ``now`` is used unless ``when`` says otherwise."""
    unknown = sorted(name for name in arguments if name != "when")
    if unknown:
        return f"Unknown argument {unknown[0][:40]!r}: this tool takes only 'when' (optional ISO 8601 date-time)."
    try:
        asked = resolve_when(arguments.get("when"), config.zone)
    except WhenError as exc:
        return str(exc)
    status = opening_status(config, asked or now)
    return describe_status(status, config.timezone, asked=asked is not None)


def regular_hours(config: OpeningHoursConfig) -> str:
    """``mon 07:00-18:00; ...; sun closed`` for the tool description."""
    return "; ".join(f"{day} {', '.join(config.weekly.get(day, [])) or 'closed'}" for day in DAYS)


def tool_description(config: OpeningHoursConfig) -> str:
    lead = config.description or (
        "Check whether the business is open now or at a given date and time, when it closes, "
        "and when it next opens (closure dates included). Use it instead of guessing from the hours you know."
    )
    return f"{lead}\nTime zone: {config.timezone}. Regular hours: {regular_hours(config)}."


def arguments_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "when": {
                "type": "string",
                "description": (
                    "Optional. The date and time to check instead of now, ISO 8601, e.g. 2025-12-24T17:30 "
                    "(business's local time). Leave it out to check now."
                ),
            }
        },
    }


def build_opening_hours_tool(context: ToolContext) -> BaseTool:
    # Imported here, as the built-in tools do: loading plugins should not pay for LangChain.
    from langchain_core.tools import StructuredTool

    config = context.config
    if not isinstance(config, OpeningHoursConfig):
        raise TypeError(
            f"opening_hours tool {context.tool_name!r}: expected an OpeningHoursConfig, got {type(config).__name__}"
        )

    async def opening_hours(**arguments: Any) -> str:
        return answer(config, arguments, dt.datetime.now(UTC))

    return StructuredTool.from_function(
        coroutine=opening_hours,
        name=context.tool_name,
        description=tool_description(config),
        args_schema=arguments_schema(),
    )
