"""Structured logs: one JSON object a line with the pipeline's ids, and never a secret."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from callable_agents.core.observability.logs import JsonFormatter, configure_logging, log_context
from tests.e2e.conftest import OPENAI_KEY
from tests.e2e.whatsapp_support import TOKEN, sqlite_settings
from tests.observability.support import METRICS_TOKEN, served


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """Every record of every logger, at DEBUG, as the JSON formatter writes it."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def lines_of(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


async def test_a_turn_and_a_send_log_their_ids_and_no_secret(tmp_path: Path, captured: io.StringIO) -> None:
    customer = "whatsapp:+15550007777"
    async with served(tmp_path) as env:
        master_key = env.runtime.settings.master_key
        assert master_key is not None
        env.openai.queue_reply("We open at 7:00.")
        assert (await env.webhook("When do you open?", customer=customer)).status_code == 200
        assert (await env.webhook("forged", customer=customer, token="wrong-token")).status_code == 403
        await env.replies_to(customer, 1)
        await asyncio.sleep(0.2)  # the send's own records
        workspace_id, channel_id = env.world.workspace.id, env.world.channel.id
    output = captured.getvalue()
    for secret in (TOKEN, OPENAI_KEY, master_key.get_secret_value(), METRICS_TOKEN):
        assert secret not in output
    lines = lines_of(captured)  # every line is one JSON object
    assert all({"time", "level", "logger", "message"} <= line.keys() for line in lines)
    # The model call happens inside the turn job: its records carry the ids the pipeline set.
    in_turn = [line for line in lines if line.get("job_kind") == "turn" and "conversation_id" in line]
    assert in_turn, "no record logged inside the turn"
    assert all(line["workspace_id"] == workspace_id and line["channel"] == "whatsapp" for line in in_turn)
    assert all(line["channel_id"] == channel_id for line in in_turn)
    in_send = [line for line in lines if "message_id" in line]
    assert in_send and all(isinstance(line["job_id"], int) for line in in_send)
    refused = [line for line in lines if "refused (403)" in str(line["message"])]
    assert refused and refused[0]["channel"] == "whatsapp" and refused[0]["level"] == "WARNING"


def test_context_is_scoped_and_exceptions_are_one_line_of_json() -> None:
    record_stream = io.StringIO()
    handler = logging.StreamHandler(record_stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("tests.observability.scoped")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        with log_context(job_id=7, conversation_id="c1", message=None):
            try:
                raise ValueError("boom")
            except ValueError:
                logger.exception("it failed\nbadly")
        logger.warning("after")
    finally:
        logger.removeHandler(handler)
    first, second = [json.loads(line) for line in record_stream.getvalue().splitlines()]
    assert first["job_id"] == 7 and first["conversation_id"] == "c1"
    assert first["message"] == "it failed\nbadly"  # a context field never replaces the message
    assert "ValueError: boom" in first["exception"]
    assert "job_id" not in second


def test_configure_logging_json_replaces_the_handlers(tmp_path: Path) -> None:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        configure_logging(sqlite_settings(tmp_path, log_format="JSON", log_level="info"))
        [handler] = root.handlers
        assert isinstance(handler.formatter, JsonFormatter)
        assert root.level == logging.INFO
        assert logging.getLogger("uvicorn.error").propagate and not logging.getLogger("uvicorn.error").handlers
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(level)


def test_text_format_leaves_logging_alone(tmp_path: Path) -> None:
    root = logging.getLogger()
    handlers = list(root.handlers)
    configure_logging(sqlite_settings(tmp_path))
    assert root.handlers == handlers


def test_a_bad_format_is_refused_naming_the_variable(tmp_path: Path) -> None:
    from callable_agents.core.config import load_settings
    from callable_agents.core.errors import ConfigError

    with pytest.raises(ConfigError, match="CALLABLE_LOG_FORMAT"):
        load_settings(data_dir=tmp_path, log_format="xml")
