"""Whether the business is open at an instant, until when, and when it next opens.

Hours are wall-clock times in the business's zone, so they are turned into instants day by
day (a DST change shortens or lengthens that night's range) and compared in UTC: Python
compares two datetimes of the same zone by wall time, which is wrong around a change.

Wall-clock times that don't exist (the hour skipped when clocks go forward) mean the moment
the clocks jump; times that happen twice (when clocks go back) mean the first occurrence.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from callable_opening_hours.config import MINUTES_PER_DAY, Closure, OpeningHoursConfig

UTC = dt.timezone.utc
HORIZON_DAYS = 400
"""How far ahead to look for a closing or an opening (past a year of closures, a full year ahead)."""


@dataclass(frozen=True)
class Opening:
    """One continuous open period, as UTC instants (touching ranges are merged into one)."""

    start: dt.datetime
    end: dt.datetime


@dataclass(frozen=True)
class OpeningStatus:
    """The answer for one instant; datetimes are in the business's zone."""

    at: dt.datetime
    is_open: bool
    closes_at: dt.datetime | None
    """When open: the end of the current open period; ``None`` if it does not end within the horizon."""
    next_opening: dt.datetime | None
    """The start of the next open period after ``at`` (after ``closes_at`` when open); ``None`` if none soon."""
    day_ranges: tuple[str, ...]
    """The regular ranges starting on ``at``'s date (empty when closed that day or on a closure)."""
    carried_over: str | None
    """The after-midnight part of the previous day's range that crosses into ``at``'s date, e.g. ``00:00-02:00``."""
    day_closure: Closure | None
    closures_ahead: tuple[Closure, ...]
    """Closures after ``at``'s date and before the next opening's date (or within the horizon)."""


def local_instant(wall_time: dt.datetime, zone: ZoneInfo) -> dt.datetime:
    """The instant a naive wall-clock time names in ``zone`` (see the module docstring for DST)."""
    first = wall_time.replace(tzinfo=zone, fold=0)
    instant = first.astimezone(UTC)
    if instant.astimezone(zone).replace(tzinfo=None) == wall_time:
        return instant.astimezone(zone)
    # In a gap, fold=0 reads the time with the offset from before the jump (landing after the
    # jump) and fold=1 with the offset after it (landing before): the jump lies in between.
    before = wall_time.replace(tzinfo=zone, fold=1).astimezone(UTC)
    return _offset_change(before, instant, zone).astimezone(zone)


def _offset_change(low: dt.datetime, high: dt.datetime, zone: ZoneInfo) -> dt.datetime:
    """The first second in (``low``, ``high``] whose UTC offset is ``high``'s (a bisection)."""
    target = high.astimezone(zone).utcoffset()
    low_s, high_s = int(low.timestamp()), int(high.timestamp())
    while high_s - low_s > 1:
        middle = (low_s + high_s) // 2
        if dt.datetime.fromtimestamp(middle, zone).utcoffset() == target:
            high_s = middle
        else:
            low_s = middle
    return dt.datetime.fromtimestamp(high_s, UTC)


def wall_time(day: dt.date, minutes: int) -> dt.datetime:
    """``minutes`` after the midnight starting ``day`` (beyond 1440 is the next day), naive."""
    return dt.datetime.combine(day, dt.time()) + dt.timedelta(minutes=minutes)


def openings(config: OpeningHoursConfig, first_day: dt.date, days: int) -> Iterator[Opening]:
    """The regular ranges starting on ``days`` dates from ``first_day``, minus closures, in order."""
    zone = config.zone
    for offset in range(days):
        day = first_day + dt.timedelta(days=offset)
        if config.closure_on(day) is not None:
            continue
        for time_range in config.ranges_on(day.weekday()):
            start = local_instant(wall_time(day, time_range.start), zone).astimezone(UTC)
            end = local_instant(wall_time(day, time_range.end), zone).astimezone(UTC)
            if end > start:  # a range entirely inside a skipped DST hour never happens
                yield Opening(start, end)


def merged(periods: Iterator[Opening]) -> Iterator[Opening]:
    """Join periods that touch or overlap (Friday 18:00-24:00 + Saturday 00:00-02:00 is one)."""
    current: Opening | None = None
    for period in periods:
        if current is not None and period.start <= current.end:
            current = Opening(current.start, max(current.end, period.end))
            continue
        if current is not None:
            yield current
        current = period
    if current is not None:
        yield current


def opening_status(config: OpeningHoursConfig, at: dt.datetime) -> OpeningStatus:
    """Open or closed at ``at`` (an aware datetime), until when, and the next opening."""
    if at.tzinfo is None:
        raise ValueError("at: expected an aware datetime (with a UTC offset or zone)")
    zone = config.zone
    at_utc = at.astimezone(UTC)
    local = at_utc.astimezone(zone)
    # Start the day before: its range may run past midnight into ``at``.
    first_day = local.date() - dt.timedelta(days=1)
    horizon_end = local_instant(wall_time(first_day, (HORIZON_DAYS + 2) * 24 * 60), zone).astimezone(UTC)
    current: Opening | None = None
    following: Opening | None = None
    for period in merged(openings(config, first_day, HORIZON_DAYS + 2)):
        if period.end <= at_utc:
            continue
        if current is None and period.start <= at_utc:
            current = period
            continue
        following = period
        break
    closes_at = None
    if current is not None and current.end < horizon_end:
        closes_at = current.end.astimezone(zone)
    next_opening = following.start.astimezone(zone) if following is not None else None
    day_closure = config.closure_on(local.date())
    previous_day = local.date() - dt.timedelta(days=1)
    overnight = [r for r in config.ranges_on(previous_day.weekday()) if r.crosses_midnight]
    carried_over = None
    if overnight and config.closure_on(previous_day) is None:
        end = overnight[-1].end - MINUTES_PER_DAY
        carried_over = f"00:00-{end // 60:02d}:{end % 60:02d}"
    if next_opening is not None:
        last_closure_day = next_opening.date() - dt.timedelta(days=1)
    else:
        last_closure_day = local.date() + dt.timedelta(days=HORIZON_DAYS)
    return OpeningStatus(
        at=local,
        is_open=current is not None,
        closes_at=closes_at,
        next_opening=next_opening,
        day_ranges=() if day_closure else tuple(r.text for r in config.ranges_on(local.weekday())),
        day_closure=day_closure,
        carried_over=carried_over,
        closures_ahead=tuple(config.closures_between(local.date() + dt.timedelta(days=1), last_closure_day)),
    )
