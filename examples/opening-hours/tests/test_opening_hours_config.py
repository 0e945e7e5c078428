"""The ``opening_hours`` config: each mistake is refused naming its field and what was expected,
both by the schema and where a person meets it, in ``callable apply``'s YAML check."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from pydantic import ValidationError

from callable_agents.plugin import Runtime
from callable_agents.testing import AgentTool, ApplyError, Plugins, SpecError, check_document, validate_agent_spec
from callable_opening_hours.config import OpeningHoursConfig, parse_range


def config_error(config: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as caught:
        OpeningHoursConfig.model_validate(config)
    return str(caught.value)


def madrid(weekly: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"timezone": "Europe/Madrid", "weekly": weekly, **extra}


@pytest.mark.parametrize(
    ("text", "start", "end", "normalised"),
    [
        ("07:00-18:00", 420, 1080, "07:00-18:00"),
        ("07:00 - 18:00", 420, 1080, "07:00-18:00"),
        ("22:00-02:00", 1320, 1560, "22:00-02:00"),
        ("18:00-24:00", 1080, 1440, "18:00-24:00"),
        ("18:00-00:00", 1080, 1440, "18:00-00:00"),
        ("00:00-24:00", 0, 1440, "00:00-24:00"),
        ("10:00-09:59", 600, 2039, "10:00-09:59"),
    ],
)
def test_ranges_parse_into_minutes(text: str, start: int, end: int, normalised: str) -> None:
    parsed = parse_range(text)
    assert (parsed.start, parsed.end, parsed.text) == (start, end, normalised)
    assert parsed.crosses_midnight == (end > 1440)


@pytest.mark.parametrize(
    ("weekly", "field", "expected"),
    [
        ({"mon": ["7:00-18:00"]}, "weekly.mon.0", "'7:00-18:00': expected HH:MM-HH:MM on a 24-hour clock"),
        ({"mon": ["07:00"]}, "weekly.mon.0", "'07:00': expected HH:MM-HH:MM"),
        ({"mon": ["07:00-18:00", "7am-6pm"]}, "weekly.mon.1", "'7am-6pm': expected HH:MM-HH:MM"),
        ({"tue": ["24:00-02:00"]}, "weekly.tue.0", "the start must be a time from 00:00 to 23:59"),
        ({"tue": ["08:60-10:00"]}, "weekly.tue.0", "the start must be a time from 00:00 to 23:59"),
        ({"tue": ["08:00-24:30"]}, "weekly.tue.0", "the end must be a time from 00:00 to 23:59, or 24:00"),
        ({"tue": ["08:00-25:00"]}, "weekly.tue.0", "the end must be a time from 00:00 to 23:59, or 24:00"),
        ({"wed": ["09:00-09:00"]}, "weekly.wed.0", "start and end are the same; for a whole day write 00:00-24:00"),
        ({"wed": "09:00-17:00"}, "weekly.wed", "Input should be a valid list"),
        ({"monday": ["09:00-17:00"]}, "weekly.monday.[key]", "Input should be 'mon', 'tue', 'wed', 'thu', 'fri', 'sat' or 'sun'"),
        ({"Mon": ["09:00-17:00"]}, "weekly.Mon.[key]", "Input should be 'mon'"),
        ({"thu": [f"{hour:02d}:00-{hour:02d}:30" for hour in range(9)]}, "weekly.thu", "List should have at most 8 items"),
    ],
)
def test_weekly_format_errors_name_the_day_and_range(weekly: dict[str, Any], field: str, expected: str) -> None:
    message = config_error(madrid(weekly))
    assert f"\n{field}\n" in message
    assert expected in message


@pytest.mark.parametrize(
    ("weekly", "expected"),
    [
        ({"mon": ["08:00-14:00", "13:00-20:00"]}, "mon 08:00-14:00 overlaps mon 13:00-20:00"),
        ({"mon": ["08:00-14:00", "08:00-14:00"]}, "mon 08:00-14:00 overlaps mon 08:00-14:00"),
        ({"fri": ["20:00-03:00"], "sat": ["02:00-04:00"]}, "fri 20:00-03:00 overlaps sat 02:00-04:00"),
        ({"sun": ["22:00-08:30"], "mon": ["08:00-14:00"]}, "sun 22:00-08:30 overlaps mon 08:00-14:00"),
        ({"sat": ["10:00-09:00"], "sun": ["08:00-10:00"]}, "sat 10:00-09:00 overlaps sun 08:00-10:00"),
    ],
)
def test_overlapping_ranges_are_refused_across_midnight_and_the_week(weekly: dict[str, Any], expected: str) -> None:
    message = config_error(madrid(weekly))
    assert "\nweekly\n" in message
    assert f"{expected} (ranges may touch but not overlap)" in message


def test_touching_ranges_and_missing_days_are_fine() -> None:
    config = OpeningHoursConfig.model_validate(
        madrid({"sun": ["22:00-08:00"], "mon": ["12:00-14:00", "08:00-12:00"], "fri": ["18:00-24:00"], "sat": ["00:00-02:00"]})
    )
    # Days are stored in week order, each day's ranges by start time.
    assert config.weekly == {
        "mon": ["08:00-12:00", "12:00-14:00"],
        "fri": ["18:00-24:00"],
        "sat": ["00:00-02:00"],
        "sun": ["22:00-08:00"],
    }
    assert config.ranges_on(1) == ()  # Tuesday: not listed, closed


@pytest.mark.parametrize(
    ("timezone", "expected"),
    [
        ("Europe/Madird", "got 'Europe/Madird'; did you mean 'Europe/Madrid'?"),
        ("europe/madrid", "did you mean 'Europe/Madrid'?"),
        ("CEST", "expected an IANA time zone name like 'Europe/Madrid' or 'America/New_York', got 'CEST'"),
        ("localtime", "got 'localtime'"),
        ("../../etc/passwd", "got '../../etc/passwd'"),
        ("", "got ''"),
    ],
)
def test_an_unknown_timezone_is_refused_with_suggestions(timezone: str, expected: str) -> None:
    message = config_error({"timezone": timezone, "weekly": {}})
    assert "\ntimezone\n" in message
    assert expected in message


def test_timezones_come_from_the_iana_database() -> None:
    for name in ("Europe/Madrid", "America/Argentina/Buenos_Aires", "Asia/Kolkata", "UTC"):
        assert OpeningHoursConfig.model_validate({"timezone": name, "weekly": {}}).zone.key == name


@pytest.mark.parametrize(
    ("closures", "field", "expected"),
    [
        (["25/12/2025"], "closures.0.date", "expected an ISO date like 2025-12-25, got '25/12/2025'"),
        (["2025-02-30"], "closures.0.date", "'2025-02-30' is not a calendar date (expected YYYY-MM-DD)"),
        (["2025-12-25T00:00"], "closures.0.date", "expected an ISO date like 2025-12-25"),
        ([20251225], "closures.0", "Input should be a valid dictionary or instance of Closure"),
        ([{"date": dt.datetime(2025, 12, 25)}], "closures.0.date", "expected an ISO date like 2025-12-25"),
        ([{"note": "Christmas"}], "closures.0.date", "Field required"),
        ([{"date": "2025-12-25", "note": ""}], "closures.0.note", "String should have at least 1 character"),
        ([{"date": "2025-12-25", "note": "x" * 201}], "closures.0.note", "String should have at most 200 characters"),
        ([{"date": "2025-12-25", "reason": "Christmas"}], "closures.0.reason", "Extra inputs are not permitted"),
        (
            ["2025-12-25", "2025-01-01", {"date": "2025-12-25", "note": "again"}],
            "closures",
            "2025-12-25 is listed twice (closures[0] and closures[2]); list each date once",
        ),
    ],
)
def test_closure_errors_name_the_field(closures: list[Any], field: str, expected: str) -> None:
    message = config_error(madrid({}, closures=closures))
    assert f"\n{field}\n" in message
    assert expected in message


def test_other_fields() -> None:
    assert "\nweekly\n  Field required" in config_error({"timezone": "UTC"})
    assert "\nholidays\n  Extra inputs are not permitted" in config_error(madrid({}, holidays=[]))
    assert "\ndescription\n  String should have at most 1000 characters" in config_error(madrid({}, description="x" * 1001))


def test_closures_accept_dates_strings_and_objects_and_round_trip() -> None:
    config = OpeningHoursConfig.model_validate(
        madrid({"mon": ["09:00-17:00"]}, closures=[dt.date(2025, 12, 26), {"date": "2025-12-25", "note": " Christmas Day "}])
    )
    assert [(closure.date, closure.note) for closure in config.closures] == [
        (dt.date(2025, 12, 25), "Christmas Day"),
        (dt.date(2025, 12, 26), None),
    ]
    # Stored configs are JSON dumps validated again at each turn: the dump must validate to the same config.
    stored = config.model_dump(mode="json")
    assert stored["closures"] == [{"date": "2025-12-25", "note": "Christmas Day"}, {"date": "2025-12-26", "note": None}]
    again = OpeningHoursConfig.model_validate(stored)
    assert again == config
    assert again.closure_on(dt.date(2025, 12, 25)) == config.closures[0]


def test_an_agent_spec_with_the_tool_validates_through_the_registered_plugin(callable_plugins: Plugins) -> None:
    spec = validate_agent_spec(
        {
            "name": "assistant",
            "tools": [
                {"type": "opening_hours", "name": "opening_status", "config": madrid({"fri": ["22:00-02:00"]}, closures=["2025-12-25"])}
            ],
        },
        callable_plugins,
    )
    stored = spec.tools[0].config
    assert stored["weekly"] == {"fri": ["22:00-02:00"]}
    config = AgentTool(type="opening_hours", name="opening_status", config=stored).validated_config(callable_plugins)
    assert isinstance(config, OpeningHoursConfig)
    assert config.closure_on(dt.date(2025, 12, 25)) is not None

    with pytest.raises(SpecError) as caught:
        validate_agent_spec(
            {"name": "assistant", "tools": [{"type": "opening_hours", "name": "hours", "config": madrid({"fri": ["22-02"]})}]},
            callable_plugins,
        )
    assert [str(problem) for problem in caught.value.problems] == [
        "tools[0].config.weekly.fri[0]: '22-02': expected HH:MM-HH:MM on a 24-hour clock, "
        "like 07:00-18:00 (or 22:00-02:00 to close after midnight)"
    ]


WORKSPACE_YAML = """\
version: 1
workspace: {slug: bar, name: The Bar}
agents:
  - name: assistant
    tools:
      - type: opening_hours
        name: opening_status
        config:
          timezone: Europe/Madrid
          weekly:
            mon: [08:00-14:00, 17:00-20:30]
            fri: [08:00-14:00, 22:00-02:00]
            sun: []
          closures:
            - 2025-12-26
            - {date: 2025-12-25, note: Christmas Day}
"""


def test_a_workspace_yaml_using_the_tool_passes_the_apply_check(callable_runtime: Runtime) -> None:
    plan, _lines, _notes = check_document(callable_runtime, WORKSPACE_YAML, label="bar.yaml", base_dir=None)
    (tool,) = plan.agents[0].tools
    assert (tool.type, tool.name) == ("opening_hours", "opening_status")
    assert tool.config["closures"] == [
        {"date": "2025-12-25", "note": "Christmas Day"},
        {"date": "2025-12-26", "note": None},
    ]


def test_yaml_mistakes_are_reported_with_their_line_and_field(callable_runtime: Runtime) -> None:
    broken = (
        WORKSPACE_YAML.replace("Europe/Madrid", "Europe/Madird")
        .replace("17:00-20:30", "5pm-8:30pm")
        .replace("sun: []", "sunday: []")
        .replace("note: Christmas Day", "notes: Christmas Day")
    )
    with pytest.raises(ApplyError) as caught:
        check_document(callable_runtime, broken, label="bar.yaml", base_dir=None)
    assert [f"{line}: {problem}" for line, problem in caught.value.problems] == [
        "9: agents[0].tools[0].config.timezone: expected an IANA time zone name like 'Europe/Madrid' or "
        "'America/New_York', got 'Europe/Madird'; did you mean 'Europe/Madrid'?",
        "11: agents[0].tools[0].config.weekly.mon[1]: '5pm-8:30pm': expected HH:MM-HH:MM on a 24-hour clock, "
        "like 07:00-18:00 (or 22:00-02:00 to close after midnight)",
        "13: agents[0].tools[0].config.weekly.sunday.[key]: expected 'mon', 'tue', 'wed', 'thu', 'fri', 'sat' or 'sun'",
        "16: agents[0].tools[0].config.closures[1].notes: unknown field (expected one of: date, note)",
    ]
