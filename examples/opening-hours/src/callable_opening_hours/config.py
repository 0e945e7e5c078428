"""The ``opening_hours`` tool's configuration: a time zone, weekly hours and closure dates.

Rules (the README says the same, for the people writing the YAML):

- ``timezone`` is an IANA name such as ``Europe/Madrid``; every time below is wall-clock
  time there, so daylight-saving changes need no special entries.
- ``weekly`` maps day keys (``mon`` ... ``sun``) to lists of ``HH:MM-HH:MM`` ranges on a
  24-hour clock. A day left out, or given ``[]``, is closed. A range whose end is not after
  its start crosses midnight: ``fri: ["22:00-02:00"]`` is open from Friday 22:00 to
  Saturday 02:00. ``24:00`` may end a range (``00:00-24:00`` is the whole day). Ranges may
  touch but not overlap, also across midnight and from Sunday into Monday.
- ``closures`` lists dates (``2025-12-25``, or ``{date: 2025-12-25, note: Christmas Day}``).
  A closure cancels every range that *starts* on that date; a range that started the
  evening before and runs past midnight still ends as usual.
"""

from __future__ import annotations

import datetime as dt
import difflib
import functools
import re
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, PrivateAttr, field_validator

DAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DayKey = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
MINUTES_PER_DAY = 24 * 60
MINUTES_PER_WEEK = 7 * MINUTES_PER_DAY
MAX_RANGES_PER_DAY = 8
MAX_CLOSURES = 500
RANGE_PATTERN = re.compile(r"^(\d{2}):(\d{2})\s*-\s*(\d{2}):(\d{2})$")
ISO_DATE_PATTERN = re.compile(r"^\d{4}-\d{2}-\d{2}$")
RANGE_EXPECTED = "expected HH:MM-HH:MM on a 24-hour clock, like 07:00-18:00 (or 22:00-02:00 to close after midnight)"
# Names zoneinfo can load but that are not places: the host's own zone and tzdata's placeholder.
NOT_PLACES = frozenset({"localtime", "Factory", "posixrules"})


@dataclass(frozen=True)
class TimeRange:
    """One opening range of a day, in minutes after that day's midnight.

    ``end`` is greater than ``start``; it exceeds 1440 when the range crosses midnight.
    """

    start: int
    end: int
    text: str

    @property
    def crosses_midnight(self) -> bool:
        return self.end > MINUTES_PER_DAY


def parse_range(text: str) -> TimeRange:
    """Parse ``HH:MM-HH:MM``; raise ``ValueError`` saying what was expected."""
    match = RANGE_PATTERN.match(text.strip())
    if match is None:
        raise ValueError(f"{text[:40]!r}: {RANGE_EXPECTED}")
    start_h, start_m, end_h, end_m = (int(part) for part in match.groups())
    if start_h > 23 or start_m > 59:
        raise ValueError(f"{text[:40]!r}: the start must be a time from 00:00 to 23:59")
    if end_m > 59 or end_h > 24 or (end_h == 24 and end_m != 0):
        raise ValueError(f"{text[:40]!r}: the end must be a time from 00:00 to 23:59, or 24:00")
    start = start_h * 60 + start_m
    end = end_h * 60 + end_m
    if end == start:
        raise ValueError(f"{text[:40]!r}: start and end are the same; for a whole day write 00:00-24:00")
    if end < start:
        end += MINUTES_PER_DAY  # closes after midnight, on the next day
    return TimeRange(start=start, end=end, text=f"{start_h:02d}:{start_m:02d}-{end_h:02d}:{end_m:02d}")


def _check_range(text: str) -> str:
    return parse_range(text).text


@functools.cache
def known_timezones() -> frozenset[str]:
    """Every IANA zone name available here (system zoneinfo files or the ``tzdata`` package).

    Scanning takes a few tens of milliseconds, so it is done once per process.
    """
    return frozenset(zoneinfo.available_timezones() - NOT_PLACES)


def check_timezone(name: str) -> str:
    """``name`` if it is an IANA time zone; otherwise a ``ValueError`` with the closest names."""
    name = name.strip()
    if name not in known_timezones():
        by_lower = {zone.lower(): zone for zone in known_timezones()}
        close = [by_lower[name.lower()]] if name.lower() in by_lower else []
        close = close or difflib.get_close_matches(name, sorted(known_timezones()), n=3, cutoff=0.75)
        hint = f"; did you mean {' or '.join(repr(zone) for zone in close)}?" if close else ""
        raise ValueError(
            f"expected an IANA time zone name like 'Europe/Madrid' or 'America/New_York', got {name[:60]!r}{hint}"
        )
    return name


def _closure_shorthand(value: object) -> object:
    """Let a closure be written as just its date (``- 2025-12-25``)."""
    if isinstance(value, (str, dt.date)):
        return {"date": value}
    return value


def _check_iso_date(value: object) -> object:
    """Accept a date (YAML parses ``2025-12-25`` into one) or an ISO ``YYYY-MM-DD`` string, nothing looser."""
    if isinstance(value, dt.datetime) or not isinstance(value, (str, dt.date)):
        raise ValueError("expected an ISO date like 2025-12-25")
    if isinstance(value, str):
        if not ISO_DATE_PATTERN.match(value.strip()):
            raise ValueError(f"expected an ISO date like 2025-12-25, got {value[:40]!r}")
        try:
            return dt.date.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(f"{value[:40]!r} is not a calendar date (expected YYYY-MM-DD)") from None
    return value


DayRanges = Annotated[list[Annotated[str, AfterValidator(_check_range)]], Field(max_length=MAX_RANGES_PER_DAY)]
"""One day's ranges, each checked and written back as ``HH:MM-HH:MM``."""


class Closure(BaseModel):
    """A date the business does not open (public holiday, inventory day, holidays)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    date: Annotated[dt.date, BeforeValidator(_check_iso_date)] = Field(
        description="The closed date, e.g. 2025-12-25."
    )
    note: str | None = Field(
        default=None, min_length=1, max_length=200, description="Why, e.g. 'Christmas Day'."
    )


class OpeningHoursConfig(BaseModel):
    """Where the business is (its time zone), its regular weekly hours and its closure dates."""

    model_config = ConfigDict(extra="forbid")

    timezone: Annotated[str, AfterValidator(check_timezone)] = Field(
        description="IANA time zone name of the business, e.g. Europe/Madrid."
    )
    weekly: dict[DayKey, DayRanges] = Field(
        description="Opening ranges by day key (mon..sun), e.g. {mon: ['07:00-14:00', '16:00-20:00']}; "
        "missing days are closed."
    )
    closures: list[Annotated[Closure, BeforeValidator(_closure_shorthand)]] = Field(
        default_factory=list,
        max_length=MAX_CLOSURES,
        description="Dates the business is closed, with an optional note.",
    )
    description: str | None = Field(
        default=None,
        min_length=1,
        max_length=1000,
        description="What the model is told the tool does (default: a generic sentence).",
    )

    _ranges: dict[int, tuple[TimeRange, ...]] = PrivateAttr(default_factory=dict)
    _closures: dict[dt.date, Closure] = PrivateAttr(default_factory=dict)

    @field_validator("weekly")
    @classmethod
    def _no_overlaps(cls, weekly: Mapping[str, list[str]]) -> dict[str, list[str]]:
        """Refuse ranges that overlap anywhere in the week, including past midnight and Sunday into Monday."""
        spans: list[tuple[int, int, str]] = []
        for day, texts in weekly.items():
            base = DAYS.index(day) * MINUTES_PER_DAY
            spans += [(base + r.start, base + r.end, f"{day} {r.text}") for r in map(parse_range, texts)]
        spans.sort()
        if len(spans) > 1:
            first_start, first_end, first_label = spans[0]
            # The week wraps: the last range (Sunday night) is followed by the first one next week.
            following = spans[1:] + [(first_start + MINUTES_PER_WEEK, first_end + MINUTES_PER_WEEK, first_label)]
            for (_, end, label), (next_start, _, next_label) in zip(spans, following, strict=True):
                if next_start < end:
                    raise ValueError(f"{label} overlaps {next_label} (ranges may touch but not overlap)")
        # Keep the days in week order and each day's ranges by start time, so stored configs read naturally.
        return {
            day: sorted(weekly[day], key=lambda text: parse_range(text).start) for day in DAYS if day in weekly
        }

    @field_validator("closures")
    @classmethod
    def _unique_dates(cls, closures: list[Closure]) -> list[Closure]:
        seen: dict[dt.date, int] = {}
        for index, closure in enumerate(closures):
            if closure.date in seen:
                raise ValueError(
                    f"{closure.date.isoformat()} is listed twice (closures[{seen[closure.date]}] and "
                    f"closures[{index}]); list each date once"
                )
            seen[closure.date] = index
        return sorted(closures, key=lambda closure: closure.date)

    def model_post_init(self, context: Any, /) -> None:
        # Parsed once here: the tool reads the ranges on every call.
        self._ranges = {
            DAYS.index(day): tuple(parse_range(text) for text in texts) for day, texts in self.weekly.items()
        }
        self._closures = {closure.date: closure for closure in self.closures}

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)

    def ranges_on(self, weekday: int) -> tuple[TimeRange, ...]:
        """The regular ranges of a weekday (Monday is 0), sorted by start."""
        return self._ranges.get(weekday, ())

    def closure_on(self, day: dt.date) -> Closure | None:
        return self._closures.get(day)

    def closures_between(self, first: dt.date, last: dt.date) -> list[Closure]:
        """Closures dated from ``first`` to ``last``, both included, in date order."""
        return [closure for closure in self.closures if first <= closure.date <= last]
