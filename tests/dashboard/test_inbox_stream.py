"""The inbox's event stream as a browser's EventSource sees it: ids it can resume from
(``Last-Event-ID``), nothing lost across a reconnect, a repeat only of what it already has."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from callable_agents.core.conversation.people import send_human_reply
from tests.dashboard.inbox_support import inbox_world
from tests.dashboard.support import signed_in_client

CUSTOMER = "whatsapp:+15550002222"


async def read_events(stream: httpx.Response, until: set[int]) -> tuple[str, set[int]]:
    """Message events until every id in ``until`` came; returns the last event id and the ids seen."""
    seen: set[int] = set()
    last_id = ""
    event: dict[str, str] = {}
    async for line in stream.aiter_lines():
        if line.startswith("id: "):
            event["id"] = line[4:]
        elif line.startswith("event: "):
            event["event"] = line[7:]
        elif line.startswith("data: "):
            event["data"] = line[6:]
        elif line == "" and event:
            if event.get("event") == "message":
                seen.add(int(json.loads(event["data"])["id"]))
            last_id = event.get("id", last_id)
            event = {}
            if until <= seen:
                return last_id, seen
    raise AssertionError(f"the stream ended before {until - seen}")


async def test_a_reconnect_with_last_event_id_loses_nothing(tmp_path: Path) -> None:
    async with inbox_world(tmp_path) as world:
        world.openai.queue_tool_call("handoff", {"reason": "complaint"})
        world.openai.queue_reply("")
        await world.customer_says("I need a person", CUSTOMER)
        await world.sent_to(CUSTOMER, 1)
        conversation_id = await world.conversation_id(CUSTOMER)
        runtime, workspace_id = world.server.runtime, world.owner.workspace_id
        async with signed_in_client(world.server, world.owner) as client:
            page = await client.get(f"/dashboard/conversations/{conversation_id}")
            since = page.text.split("since=")[1].split('"')[0]
            params = {"open": conversation_id, "since": since}
            async with client.http.stream("GET", "/dashboard/conversations/events", params=params, timeout=20) as stream:
                assert stream.headers["content-type"].startswith("text/event-stream")
                first = await send_human_reply(runtime, workspace_id, conversation_id, "first", author_name="Maria")
                last_id, _ = await read_events(stream, {first.id})
            # Dropped: what is written meanwhile comes on the next connection, which names the last event.
            meanwhile = [await send_human_reply(runtime, workspace_id, conversation_id, f"meanwhile {n}") for n in range(3)]
            headers = {"Last-Event-ID": last_id}
            async with client.http.stream("GET", "/dashboard/conversations/events", params={"open": conversation_id}, headers=headers, timeout=20) as stream:
                _, seen = await read_events(stream, {m.id for m in meanwhile})
            assert {m.id for m in meanwhile} <= seen
            # Anything repeated is a message changed within the replay's margin before the last
            # event (the page replaces it by id); nothing from after the last write.
            assert max(seen) == meanwhile[-1].id
