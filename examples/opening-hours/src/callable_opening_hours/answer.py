"""The text the model reads: an :class:`OpeningStatus` in plain sentences.

Each sentence gives a time the way a person says it ("18:00 today") and the exact instant in
ISO 8601 with its UTC offset, so the model can phrase it freely without getting it wrong.
Day and month names are fixed English words, not the server's locale.
"""

from __future__ import annotations

import datetime as dt

from callable_opening_hours.config import Closure
from callable_opening_hours.schedule import HORIZON_DAYS, OpeningStatus

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MONTHS = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip
MAX_CLOSURES_LISTED = 10


def long_date(day: dt.date) -> str:
    """``Monday 6 January 2025``."""
    return f"{WEEKDAYS[day.weekday()]} {day.day} {MONTHS[day.month - 1]} {day.year}"


def moment(when: dt.datetime, reference: dt.datetime, *, asked: bool) -> str:
    """``18:00 today`` / ``02:00 tomorrow (Saturday 1 March 2025)`` / ``07:00 on Tuesday 7 January 2025``, plus ISO.

    ``asked`` means the reference is a time the model asked about, not now: "that day"
    rather than "today".
    """
    clock = when.strftime("%H:%M")
    days = (when.date() - reference.date()).days
    if days == 0:
        said = f"{clock} {'that day' if asked else 'today'}"
    elif days == 1:
        said = f"{clock} {'the next day' if asked else 'tomorrow'} ({long_date(when.date())})"
    else:
        said = f"{clock} on {long_date(when.date())}"
    return f"{said} [{when.isoformat(timespec='minutes')}]"


def _closure(closure: Closure) -> str:
    return long_date(closure.date) + (f" ({closure.note})" if closure.note else "")


def describe_status(status: OpeningStatus, timezone: str, *, asked: bool) -> str:
    """The whole answer, one sentence per line."""
    at = status.at
    clock = f"{at.strftime('%H:%M')}, {timezone} time [{at.isoformat(timespec='minutes')}]"
    state = "Open" if status.is_open else "Closed"
    if asked:
        lines = [f"{state} on {long_date(at.date())} at {clock}."]
    else:
        lines = [f"{state} now (it is {long_date(at.date())}, {clock})."]
    if status.is_open and status.closes_at is None:
        lines.append(f"Open around the clock: no closing time in the next {HORIZON_DAYS} days.")
    else:
        if status.is_open and status.closes_at is not None:
            lines.append(f"Closes at {moment(status.closes_at, at, asked=asked)}.")
        if status.next_opening is None:
            lines.append(f"No opening is scheduled in the next {HORIZON_DAYS} days.")
        else:
            lead = "Opens again at" if status.is_open else "Next opening:"
            lines.append(f"{lead} {moment(status.next_opening, at, asked=asked)}.")
    day = long_date(at.date())
    hours = list(status.day_ranges)
    if status.carried_over is not None:
        previous = WEEKDAYS[(at.weekday() - 1) % 7]
        hours.insert(0, f"{status.carried_over} (continuing from {previous} night)")
    if status.day_closure is not None:
        note = f" ({status.day_closure.note})" if status.day_closure.note else ""
        lines.append(f"{day} is a closure day{note}: no opening hours start that day.")
        if status.carried_over is not None:
            lines.append(f"Hours on {day}: {hours[0]}.")
    else:
        lines.append(f"Hours on {day}: {', '.join(hours) if hours else 'closed all day'}.")
    if status.closures_ahead:
        listed = ", ".join(_closure(closure) for closure in status.closures_ahead[:MAX_CLOSURES_LISTED])
        more = len(status.closures_ahead) - MAX_CLOSURES_LISTED
        lead = "Closed on these dates before reopening" if status.next_opening else "Upcoming closure dates"
        lines.append(f"{lead}: {listed}" + (f" and {more} more." if more > 0 else "."))
    return "\n".join(lines)
