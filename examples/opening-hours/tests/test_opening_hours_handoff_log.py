"""The plugin's ``conversation_handed_off`` event hook, called the way the pipeline calls it:
``await callable_plugins.emit("conversation_handed_off", event=...)``. It writes a real file."""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path

import pytest

from callable_agents.plugin import HandoffEvent
from callable_agents.testing import Plugins
from callable_opening_hours.handoff_log import LOG_PATH_VARIABLE


def handoff(conversation_id: str = "conversation-1", reason: str = "customer asked for a person") -> HandoffEvent:
    return HandoffEvent(workspace_id="workspace-1", channel_id="channel-1", conversation_id=conversation_id, reason=reason)


async def test_each_handoff_appends_one_json_line(callable_plugins: Plugins, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log_file = tmp_path / "handoffs.jsonl"
    log_file.write_text('{"earlier": "line"}\n', encoding="utf-8")  # appended to, never overwritten
    monkeypatch.setenv(LOG_PATH_VARIABLE, str(log_file))
    before = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)

    await callable_plugins.emit("conversation_handed_off", event=handoff())
    await callable_plugins.emit("conversation_handed_off", event=handoff("conversation-2", "angry\nabout the «croissants»"))

    earlier, first, second = log_file.read_text(encoding="utf-8").splitlines()
    assert json.loads(earlier) == {"earlier": "line"}
    record = json.loads(first)
    at = dt.datetime.fromisoformat(record.pop("at"))
    assert before <= at <= dt.datetime.now(dt.timezone.utc)
    assert at.utcoffset() == dt.timedelta(0)
    assert record == {
        "event": "conversation_handed_off",
        "workspace_id": "workspace-1",
        "channel_id": "channel-1",
        "conversation_id": "conversation-1",
        "reason": "customer asked for a person",
    }
    # A newline in the reason stays inside its JSON string: one event, one line.
    assert json.loads(second)["reason"] == "angry\nabout the «croissants»"
    assert json.loads(second)["conversation_id"] == "conversation-2"


async def test_other_events_and_an_unset_variable_write_nothing(
    callable_plugins: Plugins, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log_file = tmp_path / "handoffs.jsonl"
    monkeypatch.setenv(LOG_PATH_VARIABLE, str(log_file))
    await callable_plugins.emit("conversation_returned", event=handoff())
    assert not log_file.exists()

    monkeypatch.delenv(LOG_PATH_VARIABLE)
    await callable_plugins.emit("conversation_handed_off", event=handoff())
    monkeypatch.setenv(LOG_PATH_VARIABLE, "  ")
    await callable_plugins.emit("conversation_handed_off", event=handoff())
    assert list(tmp_path.iterdir()) == []


async def test_a_failing_write_is_logged_with_the_plugin_name_and_does_not_raise(
    callable_plugins: Plugins, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv(LOG_PATH_VARIABLE, str(tmp_path / "missing-directory" / "handoffs.jsonl"))
    with caplog.at_level(logging.ERROR, logger="callable_agents.core.plugins"):
        await callable_plugins.emit("conversation_handed_off", event=handoff())
    (record,) = [record for record in caplog.records if record.name == "callable_agents.core.plugins"]
    assert record.getMessage() == "plugin 'opening_hours' failed handling conversation_handed_off"
    assert record.exc_info is not None and isinstance(record.exc_info[1], FileNotFoundError)
    assert not (tmp_path / "missing-directory").exists()
