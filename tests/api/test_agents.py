"""Agents through the admin API: the same validation and storage as ``callable apply``."""

from __future__ import annotations

from tests.api.conftest import AGENT, ApiEnv, error_of


async def test_create_read_change_and_delete(env: ApiEnv) -> None:
    created = await env.api.post("/agents", json=AGENT)
    assert created.status_code == 201, created.text
    agent = created.json()
    assert agent["name"] == "assistant" and agent["business_info"]["name"] == "Acme Bikes"
    assert (await env.api.get(f"/agents/{agent['id']}")).json() == agent
    assert (await env.api.get("/agents/assistant")).json()["id"] == agent["id"]
    assert [a["id"] for a in (await env.api.get("/agents")).json()["agents"]] == [agent["id"]]

    await env.api.post("/knowledge-bases", json={"name": "faq"})
    changed = await env.api.patch(
        f"/agents/{agent['id']}",
        json={"name": "front-desk", "greeting": "Hello!", "knowledge_bases": ["faq"],
              "tools": [{"type": "handoff", "name": "handoff", "config": {}}]},
    )
    assert changed.status_code == 200, changed.text
    view = changed.json()
    assert (view["id"], view["name"], view["greeting"]) == (agent["id"], "front-desk", "Hello!")
    assert view["knowledge_bases"] == ["faq"] and view["tools"][0]["type"] == "handoff"
    assert view["system_prompt"] == AGENT["system_prompt"]  # fields left out are kept

    assert (await env.api.delete("/agents/front-desk")).status_code == 204
    assert (await env.api.get(f"/agents/{agent['id']}")).status_code == 404


async def test_bad_bodies_name_the_field(env: ApiEnv) -> None:
    missing = error_of(await env.api.post("/agents", json={"kind": "chat"}), 422)
    assert missing["field"] == "name"
    tool = error_of(
        await env.api.post("/agents", json={**AGENT, "tools": [{"type": "teleport", "name": "go"}]}), 422
    )
    assert tool["field"] == "tools[0].type" and "teleport" in tool["message"]
    several = error_of(
        await env.api.post(
            "/agents", json={**AGENT, "kind": "robot", "model_settings": {"model": "gpt-4o-mini", "temperature": 9}}
        ),
        422,
    )
    assert {p["field"] for p in several["problems"]} == {"kind", "model_settings.temperature"}
    unknown = error_of(await env.api.post("/agents", json={**AGENT, "prompt": "typo"}), 422)
    assert unknown["field"] == "prompt"
    kb = error_of(await env.api.post("/agents", json={**AGENT, "knowledge_bases": ["nope"]}), 422)
    assert kb["field"] == "knowledge_bases[0]"
    not_object = error_of(await env.api.post("/agents", content=b"[1, 2]"), 422)
    assert not_object["field"] == "body"
    assert error_of(await env.api.post("/agents", content=b"{oops"), 422)["message"]
    assert (await env.api.get("/agents")).json()["agents"] == []  # nothing half-stored

    assert (await env.api.post("/agents", json=AGENT)).status_code == 201
    assert error_of(await env.api.post("/agents", json=AGENT), 409)["message"].startswith("name:")
    bad_change = error_of(await env.api.patch("/agents/assistant", json={"greeting": 5}), 422)
    assert bad_change["field"] == "greeting"
    await env.api.post("/agents", json={**AGENT, "name": "other"})
    taken = error_of(await env.api.patch("/agents/assistant", json={"name": "other"}), 409)
    assert "other" in taken["message"]


async def test_an_agent_a_channel_uses_stays_a_chat_agent(env: ApiEnv) -> None:
    await env.api.post("/agents", json=AGENT)
    channel = await env.api.post("/channels", json={"name": "site", "kind": "widget", "agent": "assistant"})
    assert channel.status_code == 201, channel.text
    voice = error_of(await env.api.patch("/agents/assistant", json={"kind": "voice"}), 422)
    assert voice["field"] == "kind" and "site" in voice["message"] and "voice agent cannot answer" in voice["message"]
    in_use = error_of(await env.api.delete("/agents/assistant"), 409)
    assert "site" in in_use["message"]
    assert (await env.api.get("/agents/assistant")).json()["kind"] == "chat"


async def test_another_workspaces_agents_are_not_found(env: ApiEnv) -> None:
    agent = (await env.other.post("/agents", json=AGENT)).json()
    for reference in (agent["id"], agent["name"]):
        assert (await env.api.get(f"/agents/{reference}")).status_code == 404
        assert (await env.api.patch(f"/agents/{reference}", json={"greeting": "hijacked"})).status_code == 404
        assert (await env.api.delete(f"/agents/{reference}")).status_code == 404
    assert (await env.api.get("/agents")).json()["agents"] == []
    assert (await env.other.get(f"/agents/{agent['id']}")).json()["greeting"] == AGENT["greeting"]


async def test_a_key_is_required(env: ApiEnv) -> None:
    assert error_of(await env.anonymous.get("/agents"), 401)["message"].startswith("Authorization:")
    wrong = await env.api.get("/agents", headers={"Authorization": "Bearer ca_0000_nope"})
    assert error_of(wrong, 401)["message"] == "Authorization: the API key is unknown or revoked"
