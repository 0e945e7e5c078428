"""The built-in ``send_info`` tool: each kind of item becomes the right ``send`` effect, word for word."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import ValidationError

from callable_agents.core.contracts.effects import Effect, SendItem
from callable_agents.core.contracts.tools import ToolContext, ToolType
from callable_agents.core.conversation.turn.tools import call_tool
from callable_agents.core.plugins import load_plugins
from callable_agents.core.runtime import Runtime
from callable_agents.plugins import send_info
from callable_agents.plugins.send_info import SendInfoConfig

ITEMS: list[dict[str, Any]] = [
    {"key": "booking", "label": "Book a table", "kind": "link", "url": "https://acme.example/book?src=chat"},
    {"key": "menu", "label": "Our menu", "kind": "media", "url": "https://cdn.acme.example/menu.pdf", "content_type": "application/pdf"},
    {"key": "photo", "label": "The terrace", "kind": "media", "url": "https://cdn.acme.example/terrace.jpg"},
    {"key": "refunds", "label": "Refund policy", "kind": "text", "text": "Refunds within *14 days*,\nreceipt required."},
]


class Turn:
    """One turn's calls of a tool, as the tools node makes them: each sees the effects asked before it."""

    def __init__(self, tool: BaseTool) -> None:
        self.tool = tool
        self.effects: list[Effect] = []

    async def call(self, arguments: dict[str, Any]) -> str:
        outcome = await call_tool(self.tool, arguments, effects=self.effects)
        self.effects.extend(outcome.effects)
        return outcome.text


def make_context(runtime: Runtime, config: dict[str, Any]) -> tuple[ToolType, ToolContext]:
    tool_type = runtime.plugins.tools.get("send_info")
    context = ToolContext(
        runtime=runtime,
        workspace_id="workspace-1",
        agent_id="agent-1",
        tool_name="send_document",
        config=tool_type.config_schema.model_validate(config),
        conversation_id="conversation-1",
        channel_kind="whatsapp",
    )
    return tool_type, context


async def test_each_kind_becomes_its_send_effect(sqlite_runtime: Runtime) -> None:
    tool_type, context = make_context(sqlite_runtime, {"items": ITEMS})
    turn = Turn(tool_type.factory(context))

    assert await turn.call({"item": "booking"}) == "Sent 'Book a table' to the customer as its own message."
    assert await turn.call({"item": "menu"}) == "Sent 'Our menu' to the customer as its own message."
    assert await turn.call({"item": "photo"}) == "Sent 'The terrace' to the customer as its own message."
    assert await turn.call({"item": "refunds"}) == "Sent 'Refund policy' to the customer as its own message."
    assert turn.effects == [
        SendItem(text="Book a table: https://acme.example/book?src=chat", media=[]),
        SendItem(text="Our menu", media=[{"url": "https://cdn.acme.example/menu.pdf", "content_type": "application/pdf"}]),
        SendItem(text="The terrace", media=[{"url": "https://cdn.acme.example/terrace.jpg", "content_type": None}]),
        SendItem(text="Refunds within *14 days*,\nreceipt required.", media=[]),
    ]


async def test_the_model_sees_the_keys_and_labels(sqlite_runtime: Runtime) -> None:
    tool_type, context = make_context(sqlite_runtime, {"items": ITEMS, "description": "Send prepared info."})
    function = convert_to_openai_tool(tool_type.factory(context))["function"]
    assert function["name"] == "send_document"
    assert function["description"].startswith("Send prepared info.\nItems:\n- booking: Book a table (link)")
    item = function["parameters"]["properties"]["item"]
    assert item["enum"] == ["booking", "menu", "photo", "refunds"]
    assert "menu = Our menu" in item["description"]
    assert function["parameters"]["required"] == ["item"]


async def test_unknown_or_missing_item_is_an_error_listing_the_keys(sqlite_runtime: Runtime) -> None:
    tool_type, context = make_context(sqlite_runtime, {"items": ITEMS})
    turn = Turn(tool_type.factory(context))
    valid = "booking (Book a table), menu (Our menu), photo (The terrace), refunds (Refund policy)"
    assert await turn.call({"item": "wifi"}) == f"Unknown item 'wifi'. Valid items: {valid}."
    assert await turn.call({}) == f"Missing argument 'item': the key of the item to send, one of: {valid}."
    assert await turn.call({"item": 3}) == f"Missing argument 'item': the key of the item to send, one of: {valid}."
    assert (
        await turn.call({"item": "menu", "to": "+1555"})
        == f"Unknown argument 'to': this tool takes only 'item', one of: {valid}."
    )
    assert turn.effects == []


async def test_the_same_item_is_sent_once_per_turn(sqlite_runtime: Runtime) -> None:
    tool_type, context = make_context(sqlite_runtime, {"items": ITEMS})
    turn = Turn(tool_type.factory(context))
    await turn.call({"item": "menu"})
    assert await turn.call({"item": "menu"}) == "'Our menu' was already sent to the customer in this turn."
    assert len(turn.effects) == 1


def test_registered_by_its_entry_point() -> None:
    plugins = load_plugins(autoload=False)
    assert plugins.tools.owners["send_info"] == "send_info"
    tool_type = plugins.tools.get("send_info")
    assert tool_type.config_schema is SendInfoConfig
    assert tool_type.factory is send_info.build_send_info_tool


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        ({"key": "a", "label": "A", "kind": "link"}, "url: required for kind 'link'"),
        ({"key": "a", "label": "A", "kind": "media", "url": "ftp://x.example/a.pdf"}, "scheme 'ftp'"),
        ({"key": "a", "label": "A", "kind": "link", "url": "javascript:alert(1)"}, "scheme 'javascript'"),
        ({"key": "a", "label": "A", "kind": "link", "url": "https://x.example", "text": "hi"}, "text: only used by kind 'text'"),
        ({"key": "a", "label": "A", "kind": "text"}, "text: required for kind 'text'"),
        ({"key": "a", "label": "A", "kind": "text", "text": "hi", "url": "https://x.example"}, "url: only used by kinds"),
        ({"key": "a", "label": "A", "kind": "text", "text": "hi", "content_type": "text/plain"}, "content_type: only used by kind 'media'"),
        ({"key": "a", "label": "A", "kind": "media", "url": "https://x.example/a", "content_type": "pdf"}, "expected a media type"),
        ({"key": "Menu PDF", "label": "A", "kind": "text", "text": "x"}, "key\n  Value error, expected 1-63 lowercase letters"),
        ({"key": "a", "label": "", "kind": "text", "text": "x"}, "label\n  String should have at least 1 character"),
        ({"key": "a", "label": "A", "kind": "video", "url": "https://x.example"}, "kind\n  Input should be 'link', 'media' or 'text'"),
        ({"key": "a", "label": "A", "kind": "text", "text": "x", "colour": "red"}, "colour\n  Extra inputs are not permitted"),
    ],
)
def test_item_config_errors_name_the_field(item: dict[str, Any], expected: str) -> None:
    with pytest.raises(ValidationError) as caught:
        SendInfoConfig.model_validate({"items": [item]})
    message = str(caught.value)
    assert "items.0" in message
    assert expected in message


def test_config_errors_for_the_list() -> None:
    with pytest.raises(ValidationError, match="items\n  List should have at least 1 item"):
        SendInfoConfig.model_validate({"items": []})
    with pytest.raises(ValidationError, match="key 'menu' is used by two items"):
        SendInfoConfig.model_validate({"items": [ITEMS[1], {**ITEMS[0], "key": "menu"}]})
