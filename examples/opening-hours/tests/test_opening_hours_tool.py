"""The ``opening_hours`` tool, built from the registered plugin with a real ``ToolContext`` and
called at fixed ``when`` instants: open, closed, past midnight, on closures, across DST changes.

The clock is pinned only through ``when``, the tool's own argument (as the model would).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from langchain_core.utils.function_calling import convert_to_openai_tool

from pydantic import BaseModel

import callable_opening_hours.plugin as opening_hours_plugin
from callable_agents.plugin import Runtime, ToolContext, ToolType, hookimpl
from callable_agents.testing import PluginError, Plugins, call_tool, load_test_plugins
from callable_opening_hours.config import OpeningHoursConfig
from callable_opening_hours.tool import build_opening_hours_tool

Build = Callable[..., Any]
MADRID = ZoneInfo("Europe/Madrid")
EVERY_DAY = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


async def ask(build_tool: Build, config: dict[str, Any], when: str | None = None) -> list[str]:
    tool, _context = build_tool(config)
    outcome = await call_tool(tool, {} if when is None else {"when": when})
    assert outcome.effects == []  # the tool only informs the model; it asks the pipeline for nothing
    return outcome.text.splitlines()


def test_registered_through_the_plugin_hooks(callable_plugins: Plugins) -> None:
    plugins = callable_plugins
    assert plugins.tools.owners["opening_hours"] == "opening_hours"
    tool_type = plugins.tools.get("opening_hours")
    assert tool_type.config_schema is OpeningHoursConfig
    assert tool_type.factory is build_opening_hours_tool
    assert {"plugin": "opening_hours", "provides": {"tool": ["opening_hours"]}} in plugins.describe()
    hooks = plugins.manager.hook.conversation_handed_off.get_hookimpls()
    assert "opening_hours" in [impl.plugin_name for impl in hooks]


class Copycat:
    """Another plugin that registers a tool type by the same name."""

    @hookimpl
    def register_tools(self) -> list[ToolType]:
        return list(opening_hours_plugin.register_tools())


def test_a_second_plugin_with_the_same_tool_type_is_refused_naming_both() -> None:
    with pytest.raises(PluginError, match=r"tool type 'opening_hours', already registered by plugin '(opening_hours|copycat)'") as caught:
        load_test_plugins(("opening_hours", opening_hours_plugin), ("copycat", Copycat()))
    assert "'copycat'" in str(caught.value) and "'opening_hours'" in str(caught.value)


async def test_open_between_split_hours(build_tool: Build, bar_config: dict[str, Any]) -> None:
    assert await ask(build_tool, bar_config, "2025-01-07T12:00") == [
        "Open on Tuesday 7 January 2025 at 12:00, Europe/Madrid time [2025-01-07T12:00+01:00].",
        "Closes at 14:00 that day [2025-01-07T14:00+01:00].",
        "Opens again at 17:00 that day [2025-01-07T17:00+01:00].",
        "Hours on Tuesday 7 January 2025: 08:00-14:00, 17:00-20:30.",
    ]


async def test_closed_at_lunch_and_at_the_edges(build_tool: Build, bar_config: dict[str, Any]) -> None:
    assert await ask(build_tool, bar_config, "2025-01-07T15:00") == [
        "Closed on Tuesday 7 January 2025 at 15:00, Europe/Madrid time [2025-01-07T15:00+01:00].",
        "Next opening: 17:00 that day [2025-01-07T17:00+01:00].",
        "Hours on Tuesday 7 January 2025: 08:00-14:00, 17:00-20:30.",
    ]
    # Ranges include their start and exclude their end.
    assert (await ask(build_tool, bar_config, "2025-01-07T14:00"))[0].startswith("Closed on Tuesday")
    assert (await ask(build_tool, bar_config, "2025-01-07T13:59"))[0].startswith("Open on Tuesday")
    assert (await ask(build_tool, bar_config, "2025-01-07T08:00"))[0].startswith("Open on Tuesday")
    evening = await ask(build_tool, bar_config, "2025-01-07T20:30")
    assert evening[:2] == [
        "Closed on Tuesday 7 January 2025 at 20:30, Europe/Madrid time [2025-01-07T20:30+01:00].",
        "Next opening: 08:00 the next day (Wednesday 8 January 2025) [2025-01-08T08:00+01:00].",
    ]


async def test_a_when_with_an_offset_is_converted_to_local_time(build_tool: Build, bar_config: dict[str, Any]) -> None:
    # 11:00 UTC is 12:00 in Madrid in winter; 13:30 in New York is 19:30 in Madrid.
    assert (await ask(build_tool, bar_config, "2025-01-07T11:00Z"))[0] == (
        "Open on Tuesday 7 January 2025 at 12:00, Europe/Madrid time [2025-01-07T12:00+01:00]."
    )
    assert (await ask(build_tool, bar_config, "2025-01-07T13:30-05:00"))[:2] == [
        "Open on Tuesday 7 January 2025 at 19:30, Europe/Madrid time [2025-01-07T19:30+01:00].",
        "Closes at 20:30 that day [2025-01-07T20:30+01:00].",
    ]


async def test_a_range_crossing_midnight(build_tool: Build, bar_config: dict[str, Any]) -> None:
    assert await ask(build_tool, bar_config, "2025-01-10T23:00") == [
        "Open on Friday 10 January 2025 at 23:00, Europe/Madrid time [2025-01-10T23:00+01:00].",
        "Closes at 02:00 the next day (Saturday 11 January 2025) [2025-01-11T02:00+01:00].",
        "Opens again at 22:00 the next day (Saturday 11 January 2025) [2025-01-11T22:00+01:00].",
        "Hours on Friday 10 January 2025: 08:00-14:00, 17:00-20:30, 22:00-02:00.",
    ]
    # After midnight it is Saturday, still inside Friday's range.
    assert await ask(build_tool, bar_config, "2025-01-11T01:30") == [
        "Open on Saturday 11 January 2025 at 01:30, Europe/Madrid time [2025-01-11T01:30+01:00].",
        "Closes at 02:00 that day [2025-01-11T02:00+01:00].",
        "Opens again at 22:00 that day [2025-01-11T22:00+01:00].",
        "Hours on Saturday 11 January 2025: 00:00-02:00 (continuing from Friday night), 22:00-03:00.",
    ]
    assert (await ask(build_tool, bar_config, "2025-01-11T02:00"))[0].startswith("Closed on Saturday 11 January 2025")


async def test_sunday_closed_then_a_closure_before_reopening(build_tool: Build, bar_config: dict[str, Any]) -> None:
    # Monday 6 January is a closure (Epiphany): the next opening skips to Tuesday.
    assert await ask(build_tool, bar_config, "2025-01-05T12:00") == [
        "Closed on Sunday 5 January 2025 at 12:00, Europe/Madrid time [2025-01-05T12:00+01:00].",
        "Next opening: 08:00 on Tuesday 7 January 2025 [2025-01-07T08:00+01:00].",
        "Hours on Sunday 5 January 2025: 00:00-03:00 (continuing from Saturday night).",
        "Closed on these dates before reopening: Monday 6 January 2025 (Epiphany).",
    ]


async def test_on_a_closure_date(build_tool: Build, bar_config: dict[str, Any]) -> None:
    # Thursday 25 and Friday 26 December are closed, so Friday night's range is cancelled too.
    assert await ask(build_tool, bar_config, "2025-12-25T10:00") == [
        "Closed on Thursday 25 December 2025 at 10:00, Europe/Madrid time [2025-12-25T10:00+01:00].",
        "Next opening: 22:00 on Saturday 27 December 2025 [2025-12-27T22:00+01:00].",
        "Thursday 25 December 2025 is a closure day (Christmas Day): no opening hours start that day.",
        "Closed on these dates before reopening: Friday 26 December 2025.",
    ]
    # A regular Thursday at that time would be open.
    assert (await ask(build_tool, bar_config, "2025-12-18T10:00"))[0].startswith("Open on Thursday 18 December 2025")


async def test_a_closure_keeps_the_night_that_started_the_day_before(build_tool: Build, bar_config: dict[str, Any]) -> None:
    # Saturday 1 November is a closure; Friday 31 October's 22:00-02:00 still runs past midnight.
    assert await ask(build_tool, bar_config, "2025-11-01T01:00") == [
        "Open on Saturday 1 November 2025 at 01:00, Europe/Madrid time [2025-11-01T01:00+01:00].",
        "Closes at 02:00 that day [2025-11-01T02:00+01:00].",
        "Opens again at 08:00 on Monday 3 November 2025 [2025-11-03T08:00+01:00].",
        "Saturday 1 November 2025 is a closure day (All Saints' Day): no opening hours start that day.",
        "Hours on Saturday 1 November 2025: 00:00-02:00 (continuing from Friday night).",
    ]
    assert (await ask(build_tool, bar_config, "2025-11-01T22:30"))[:2] == [
        "Closed on Saturday 1 November 2025 at 22:30, Europe/Madrid time [2025-11-01T22:30+01:00].",
        "Next opening: 08:00 on Monday 3 November 2025 [2025-11-03T08:00+01:00].",
    ]


async def test_clocks_going_forward_shorten_the_night(build_tool: Build, bar_config: dict[str, Any]) -> None:
    """Sunday 30 March 2025: Madrid jumps from 02:00 (UTC+1) to 03:00 (UTC+2)."""
    lines = await ask(build_tool, bar_config, "2025-03-30T01:59")
    assert lines[:2] == [
        "Open on Sunday 30 March 2025 at 01:59, Europe/Madrid time [2025-03-30T01:59+01:00].",
        "Closes at 03:00 that day [2025-03-30T03:00+02:00].",
    ]
    # Saturday's 22:00-03:00 lasts four hours of real time that night, not five.
    opened = dt.datetime(2025, 3, 29, 22, 0, tzinfo=MADRID)
    closed = dt.datetime.fromisoformat("2025-03-30T03:00+02:00")
    assert closed - opened == dt.timedelta(hours=4)
    # 02:30 never happens that night: it means the moment the clocks jump, which is closing time.
    assert await ask(build_tool, bar_config, "2025-03-30T02:30") == [
        "Closed on Sunday 30 March 2025 at 03:00, Europe/Madrid time [2025-03-30T03:00+02:00].",
        "Next opening: 08:00 the next day (Monday 31 March 2025) [2025-03-31T08:00+02:00].",
        "Hours on Sunday 30 March 2025: 00:00-03:00 (continuing from Saturday night).",
    ]
    # The same instant written in UTC.
    assert (await ask(build_tool, bar_config, "2025-03-30T00:59Z"))[0].startswith(
        "Open on Sunday 30 March 2025 at 01:59, Europe/Madrid time"
    )


async def test_an_opening_time_skipped_by_the_clocks_opens_when_they_jump(build_tool: Build) -> None:
    config = {"timezone": "Europe/Madrid", "weekly": {"sun": ["02:30-05:00"]}}
    assert (await ask(build_tool, config, "2025-03-30T01:59"))[:2] == [
        "Closed on Sunday 30 March 2025 at 01:59, Europe/Madrid time [2025-03-30T01:59+01:00].",
        "Next opening: 03:00 that day [2025-03-30T03:00+02:00].",
    ]
    # A week earlier, without a change, it opens at 02:30 as written.
    assert (await ask(build_tool, config, "2025-03-23T01:59"))[1] == "Next opening: 02:30 that day [2025-03-23T02:30+01:00]."


async def test_clocks_going_back_lengthen_the_night(build_tool: Build, bar_config: dict[str, Any]) -> None:
    """Sunday 26 October 2025: Madrid goes back from 03:00 (UTC+2) to 02:00 (UTC+1)."""
    # 02:30 happens twice; without an offset it means the first time (summer time).
    assert (await ask(build_tool, bar_config, "2025-10-26T02:30"))[:2] == [
        "Open on Sunday 26 October 2025 at 02:30, Europe/Madrid time [2025-10-26T02:30+02:00].",
        "Closes at 03:00 that day [2025-10-26T03:00+01:00].",
    ]
    # The second 02:30, given with its offset, is still open: Saturday's night lasts six hours.
    assert (await ask(build_tool, bar_config, "2025-10-26T02:30+01:00"))[0].startswith(
        "Open on Sunday 26 October 2025 at 02:30, Europe/Madrid time [2025-10-26T02:30+01:00]."
    )
    assert (await ask(build_tool, bar_config, "2025-10-26T03:00+01:00"))[0].startswith("Closed on Sunday 26 October 2025")
    closes = dt.datetime.fromisoformat("2025-10-26T03:00+01:00")
    assert closes - dt.datetime(2025, 10, 25, 22, 0, tzinfo=MADRID) == dt.timedelta(hours=6)


async def test_touching_ranges_are_one_open_period(build_tool: Build) -> None:
    config = {"timezone": "Europe/Madrid", "weekly": {"fri": ["18:00-24:00"], "sat": ["00:00-02:00", "10:00-12:00"]}}
    assert (await ask(build_tool, config, "2025-01-10T20:00"))[1:3] == [
        "Closes at 02:00 the next day (Saturday 11 January 2025) [2025-01-11T02:00+01:00].",
        "Opens again at 10:00 the next day (Saturday 11 January 2025) [2025-01-11T10:00+01:00].",
    ]


async def test_without_when_it_checks_the_current_time(build_tool: Build) -> None:
    always = {"timezone": "Pacific/Auckland", "weekly": {day: ["00:00-24:00"] for day in EVERY_DAY}}
    before = dt.datetime.now(ZoneInfo("Pacific/Auckland"))
    lines = await ask(build_tool, always)
    assert lines[0].startswith("Open now (it is ")
    assert ", Pacific/Auckland time [" in lines[0]
    stamp = dt.datetime.fromisoformat(lines[0].rsplit("[", 1)[1].rstrip("])."))
    assert before.replace(second=0, microsecond=0) <= stamp <= dt.datetime.now(ZoneInfo("Pacific/Auckland"))
    assert lines[1] == "Open around the clock: no closing time in the next 400 days."

    never = {"timezone": "UTC", "weekly": {}}
    lines = await ask(build_tool, never)
    assert lines[0].startswith("Closed now (it is ")
    assert lines[1] == "No opening is scheduled in the next 400 days."
    for now_word in ({"when": None}, {"when": ""}, {"when": " now "}):
        tool, _ = build_tool(never)
        assert (await tool.ainvoke(now_word)).startswith("Closed now (it is ")


async def test_long_closures_are_listed_up_to_ten(build_tool: Build) -> None:
    closures = [{"date": f"2025-08-{day:02d}", "note": "Summer holidays"} for day in range(1, 17)]
    config = {"timezone": "Europe/Madrid", "weekly": {day: ["09:00-13:00"] for day in EVERY_DAY}, "closures": closures}
    lines = await ask(build_tool, config, "2025-07-31T18:00")
    assert lines[1] == "Next opening: 09:00 on Sunday 17 August 2025 [2025-08-17T09:00+02:00]."
    assert lines[3].startswith("Closed on these dates before reopening: Friday 1 August 2025 (Summer holidays), ")
    assert lines[3].endswith("Sunday 10 August 2025 (Summer holidays) and 6 more.")


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({"when": "tomorrow at 5"}, "when: expected an ISO 8601 date-time like 2025-12-24T17:30 (the business's local time)"),
        ({"when": "2025-13-01T10:00"}, "got '2025-13-01T10:00'"),
        ({"when": "17:30"}, "got '17:30'"),
        ({"when": 1735689600}, "; got int"),
        ({"when": ["2025-01-01T10:00"]}, "; got list"),
        ({"when": "2025-01-01T10:00" + " " * 10 + "x" * 40}, "; got 66 characters"),
        ({"when": "0999-01-01T10:00"}, "when: expected a year from 1970 to 2999, got 999"),
        ({"when": "2025-01-07T12:00", "day": "tue"}, "Unknown argument 'day': this tool takes only 'when'"),
    ],
)
async def test_bad_arguments_are_explained_to_the_model(
    build_tool: Build, bar_config: dict[str, Any], arguments: dict[str, Any], expected: str
) -> None:
    tool, _ = build_tool(bar_config)
    answer = await tool.ainvoke(arguments)
    assert expected in answer
    assert "Open" not in answer and "Closed" not in answer


async def test_what_the_model_sees(build_tool: Build, bar_config: dict[str, Any]) -> None:
    tool, _ = build_tool(bar_config, tool_name="opening_status")
    function = convert_to_openai_tool(tool)["function"]
    assert function["name"] == "opening_status"
    assert function["description"].startswith("Check whether the business is open now or at a given date and time")
    assert function["description"].endswith(
        "\nTime zone: Europe/Madrid. Regular hours: mon 08:00-14:00, 17:00-20:30; tue 08:00-14:00, 17:00-20:30; "
        "wed 08:00-14:00, 17:00-20:30; thu 08:00-14:00, 17:00-20:30; fri 08:00-14:00, 17:00-20:30, 22:00-02:00; "
        "sat 22:00-03:00; sun closed."
    )
    assert list(function["parameters"]["properties"]) == ["when"]
    assert function["parameters"].get("required", []) == []

    custom, _ = build_tool({**bar_config, "description": "Opening times of the bar."})
    assert convert_to_openai_tool(custom)["function"]["description"].startswith("Opening times of the bar.\nTime zone:")


def test_the_factory_refuses_another_config_type(callable_runtime: Runtime) -> None:
    runtime = callable_runtime
    class Other(BaseModel):
        pass

    context = ToolContext(runtime=runtime, workspace_id="w", agent_id="a", tool_name="hours", config=Other())
    with pytest.raises(TypeError, match="opening_hours tool 'hours': expected an OpeningHoursConfig, got Other"):
        build_opening_hours_tool(context)
