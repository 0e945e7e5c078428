"""The Agents builder and the Tools page over HTTP: create, edit, delete; tool forms generated
from a plugin's schema; errors beside their fields with the values kept and nothing stored;
secrets referenced, never inlined; the Test panel through the real pipeline; every route
scoped to the workspace; everything customer, model or knowledge wrote escaped."""

from __future__ import annotations

import html
import re
from pathlib import Path

from sqlalchemy import select

from callable_agents.core.models import Agent, Channel
from callable_agents.core.store.channels import create_or_update_channel
from callable_agents.core.store.integrations import connect_integration
from callable_agents.core.models import Workspace
from callable_agents.testing.openai_server import FakeOpenAI
from tests.dashboard.agents_support import (
    add_text_knowledge,
    builder_server,
    builder_values,
    chat_turn,
    create_agent,
)
from tests.dashboard.support import add_member, signed_in_client


async def _agent_row(server: object, agent_id: str) -> Agent:
    runtime = server.runtime  # type: ignore[attr-defined]
    async with runtime.db.sessions() as session:
        agent = await session.get(Agent, agent_id)
        assert agent is not None
        return agent


async def test_create_edit_and_list_a_chat_agent_with_a_generated_plugin_tool_form(tmp_path: Path) -> None:
    async with builder_server(tmp_path) as server:
        owner = await add_member(server.runtime)
        await add_text_knowledge(server.runtime, owner.workspace_id, "faq", "Hours", "We open at 7 am every day.")
        async with signed_in_client(server, owner) as client:
            agent_id = await create_agent(client, "front-desk")
            page = await client.get(f"/dashboard/agents/{agent_id}")
            assert page.status_code == 200 and "offline mode" in page.text.lower()
            assert 'value="ticket"' in page.text  # the plugin's tool type is offered
            fragment = await client.get(f"/dashboard/agents/{agent_id}/tool-form", params={"new_tool_type": "ticket", "new_tool_index": "0"})
            assert fragment.status_code == 200
            # Every control generated from TicketConfig, with its label, kind and default.
            assert 'name="tools.0.config.queue"' in fragment.text and '<option value="support" selected' in fragment.text
            assert 'name="tools.0.config.priority" type="number" value="3"' in fragment.text
            assert 'name="tools.0.config.api_url"' in fragment.text and "Where tickets are created" in fragment.text
            assert '<textarea id="f-tools.0.config.tags"' in fragment.text
            assert 'name="tools.0.config.notify" type="checkbox"' in fragment.text
            assert 'id="new-tool-index" name="new_tool_index" value="1" hx-swap-oob="true"' in fragment.text
            saved = await client.post(
                f"/dashboard/agents/{agent_id}",
                builder_values(**{
                    "business_info.name": "Bella's <script>alert(1)</script> Bakery",
                    "business_info.hours": "Mon-Fri 7-18",
                    "business_info.email": "hello@example.com",
                    "business_info.facts": "Menu: https://example.com/menu\nParking behind the shop",
                    "knowledge_bases": "faq",
                    "tools.0.type": "ticket", "tools.0.name": "sales_ticket", "tools.0.config.queue": "sales",
                    "tools.0.config.priority": "1", "tools.0.config.api_url": "https://t.example.com",
                    "tools.0.config.tags": "web\nvip", "tools.0.config.notify": "on",
                    "tools.3.type": "ticket", "tools.3.name": "support_ticket", "tools.3.config.api_url": "https://t.example.com/s",
                    "tools.3.config.priority": "3",
                }),
            )
            assert saved.status_code == 303, saved.text[:3000]
            agent = await _agent_row(server, agent_id)
            assert [t["name"] for t in agent.tools] == ["sales_ticket", "support_ticket"]  # two of one type
            assert agent.tools[0]["config"] == {"queue": "sales", "priority": 1, "api_url": "https://t.example.com", "tags": ["web", "vip"], "notify": True}
            assert agent.business_info["facts"] == ["Menu: https://example.com/menu", "Parking behind the shop"]
            assert agent.model_settings.get("model") is None and len(agent.knowledge_base_ids) == 1
            again = await client.get(f"/dashboard/agents/{agent_id}")
            assert 'value="sales_ticket"' in again.text and "web\nvip</textarea>" in again.text
            assert "<script>alert(1)</script>" not in again.text and "Bella&#39;s &lt;script&gt;alert(1)&lt;/script&gt; Bakery" in again.text
            listing = await client.get("/dashboard/agents")
            assert "front-desk" in listing.text and "sales_ticket (ticket)" in listing.text and "faq" in listing.text
            tools = await client.get("/dashboard/tools")
            assert tools.status_code == 200 and "Open a ticket in the team&#39;s tracker." in tools.text
            assert "plugin ticketing" in tools.text and "support_ticket" in tools.text and "api_url" in tools.text
            # Removing a tool (its checkbox) and saving keeps the other.
            removed = await client.post(
                f"/dashboard/agents/{agent_id}",
                builder_values(**{"tools.0.type": "ticket", "tools.0.name": "sales_ticket", "tools.0.config.api_url": "https://t.example.com",
                                  "tools.0.remove": "on", "tools.1.type": "ticket", "tools.1.name": "support_ticket",
                                  "tools.1.config.api_url": "https://t.example.com/s"}),
            )
            assert removed.status_code == 303
            assert [t["name"] for t in (await _agent_row(server, agent_id)).tools] == ["support_ticket"]


async def test_bad_input_is_shown_beside_its_field_kept_as_typed_and_nothing_is_stored(tmp_path: Path) -> None:
    async with builder_server(tmp_path) as server:
        owner = await add_member(server.runtime)
        async with signed_in_client(server, owner) as client:
            bad_name = await client.post("/dashboard/agents", {"name": "no spaces allowed", "kind": "chat"})
            assert bad_name.status_code == 422 and 'id="e-name"' in bad_name.text and 'value="no spaces allowed"' in bad_name.text
            agent_id = await create_agent(client, "desk")
            before = await _agent_row(server, agent_id)
            bad = await client.post(
                f"/dashboard/agents/{agent_id}",
                builder_values(**{
                    "system_prompt": "Be kind <b>always</b>",
                    "business_info.email": "not-an-email",
                    "business_info.website": "ftp://nope",
                    "model_settings.temperature": "7",
                    "tools.4.type": "ticket", "tools.4.name": "bad name!", "tools.4.config.priority": "9",
                    "tools.4.config.api_url": "",
                }),
            )
            assert bad.status_code == 422
            text = bad.text
            for field in ("business_info.email", "business_info.website", "model_settings.temperature",
                          "tools.4.name", "tools.4.config.priority", "tools.4.config.api_url"):
                assert f'id="e-{field}"' in text, field  # the error is beside its control
            assert "expected an email address" in text
            assert "Be kind &lt;b&gt;always&lt;/b&gt;" in text and 'value="not-an-email"' in text  # kept, escaped
            assert 'value="bad name!"' in text
            # With the shape right, what the workspace lacks and inlined secrets, all at once.
            missing = await client.post(
                f"/dashboard/agents/{agent_id}",
                builder_values(**{
                    "knowledge_bases": "missing-kb",
                    "tools.5.type": "lookup", "tools.5.name": "orders", "tools.5.config.url": "https://api.example.com/o",
                    "tools.5.config.method": "GET", "tools.5.config.description": "Look up a record.",
                    "tools.5.config.headers": '{"Authorization": "Bearer sk-abcdefghijklmnopqrstuvwxyz"}',
                    "tools.6.type": "lookup", "tools.6.name": "crm", "tools.6.config.url": "https://api.example.com/c",
                    "tools.6.config.method": "GET", "tools.6.config.description": "Look up a record.",
                    "tools.6.config.headers": '{"Authorization": "Bearer {{secret:nowhere.token}}"}',
                }),
            )
            assert missing.status_code == 422
            for field in ("knowledge_bases", "tools.5.config.headers", "tools.6.config.headers"):
                assert f'id="e-{field}"' in missing.text, field
            assert "no knowledge base named &#39;missing-kb&#39;" in missing.text
            assert "looks like a secret written into the file" in missing.text
            assert "no integration named &#39;nowhere&#39;" in missing.text
            after = await _agent_row(server, agent_id)
            assert after.system_prompt == before.system_prompt and after.tools == [] and after.updated_at == before.updated_at
            # A model integration without a model name is refused on the model field.
            no_model = await client.post(f"/dashboard/agents/{agent_id}", builder_values(**{"model_settings.integration": "@server"}))
            assert no_model.status_code == 422 and 'id="e-model_settings.model"' in no_model.text


async def test_a_secret_reference_to_a_connected_integration_is_stored_as_a_reference(tmp_path: Path) -> None:
    async with builder_server(tmp_path) as server:
        owner = await add_member(server.runtime)
        async with server.runtime.db.session() as session:
            workspace = await session.get(Workspace, owner.workspace_id)
            assert workspace is not None
            await connect_integration(session, server.runtime.vault, workspace, provider="http", name="crm", public={}, secrets={"token": "tok-123456789"})
        async with signed_in_client(server, owner) as client:
            agent_id = await create_agent(client, "desk")
            saved = await client.post(
                f"/dashboard/agents/{agent_id}",
                builder_values(**{"tools.0.type": "lookup", "tools.0.name": "crm", "tools.0.config.url": "https://api.example.com/c",
                                  "tools.0.config.method": "GET", "tools.0.config.description": "Look up a record.", "tools.0.config.headers": '{"Authorization": "Bearer {{secret:crm.token}}"}'}),
            )
            assert saved.status_code == 303, re.findall(r'class="field-error"[^>]*>([^<]+)', saved.text)
            agent = await _agent_row(server, agent_id)
            assert agent.tools[0]["config"]["headers"] == {"Authorization": "Bearer {{secret:crm.token}}"}
            page = await client.get(f"/dashboard/agents/{agent_id}")
            assert "tok-123456789" not in page.text
            wrong_field = await client.post(
                f"/dashboard/agents/{agent_id}",
                builder_values(**{"tools.0.type": "lookup", "tools.0.name": "crm", "tools.0.config.url": "https://api.example.com/c",
                                  "tools.0.config.method": "GET", "tools.0.config.description": "Look up a record.", "tools.0.config.headers": '{"X-Key": "{{secret:crm.nope}}"}'}),
            )
            assert wrong_field.status_code == 422 and "is not a secret field of http integrations" in wrong_field.text


async def test_voice_agents_and_deleting_an_agent_a_channel_uses(tmp_path: Path) -> None:
    async with builder_server(tmp_path) as server:
        owner = await add_member(server.runtime)
        async with signed_in_client(server, owner) as client:
            voice_id = await create_agent(client, "phone", kind="voice")
            page = await client.get(f"/dashboard/agents/{voice_id}")
            assert "voice agent" in page.text and 'id="test-form"' not in page.text
            refused = await client.post(f"/dashboard/agents/{voice_id}/test", {"text": "hi", "session": "s1"})
            assert refused.status_code == 422 and "voice agent answers phone calls" in refused.text
            assert (await _agent_row(server, voice_id)).kind == "voice"
            chat_id = await create_agent(client, "desk")
            await chat_turn(client, chat_id, "hello")  # its test channel exists now
            async with server.runtime.db.session() as session:
                await create_or_update_channel(session, server.runtime, owner.workspace_id, name="site-widget", kind="widget", agent="desk")
            listing = await client.get("/dashboard/agents")
            assert "site-widget" in listing.text and "test-panel-desk" not in listing.text
            blocked = await client.post(f"/dashboard/agents/{chat_id}/delete")
            assert blocked.status_code == 409 and "site-widget" in blocked.text
            async with server.runtime.db.sessions() as session:
                kinds = set((await session.scalars(select(Channel.kind).where(Channel.agent_id == chat_id))).all())
            assert kinds == {"widget", "test-panel"}  # nothing half-done: the test channel is still there
            deleted = await client.post(f"/dashboard/agents/{voice_id}/delete")
            assert deleted.status_code == 303
            async with server.runtime.db.session() as session:
                channel = await session.scalar(select(Channel).where(Channel.name == "site-widget"))
                await session.delete(channel)
            assert (await client.post(f"/dashboard/agents/{chat_id}/delete")).status_code == 303
            async with server.runtime.db.sessions() as session:
                assert (await session.scalars(select(Agent))).all() == []


async def test_the_test_panel_answers_offline_with_its_trace_and_a_channel_preview(tmp_path: Path) -> None:
    knowledge = (
        "Sourdough. Our sourdough loaf costs $6 and is **baked** overnight with <script>alert(1)</script> care.\n\n"
        "Opening hours. We open at 7 am every day and close at 6 pm."
    )
    async with builder_server(tmp_path) as server:
        owner = await add_member(server.runtime)
        await add_text_knowledge(server.runtime, owner.workspace_id, "faq", "Bread <i>notes</i>", knowledge)
        async with signed_in_client(server, owner) as client:
            agent_id = await create_agent(client, "desk")
            saved = await client.post(f"/dashboard/agents/{agent_id}", builder_values(knowledge_bases="faq"))
            assert saved.status_code == 303
            page = await client.get(f"/dashboard/agents/{agent_id}")
            kinds = server.runtime.plugins.channels
            limited = min((t for t in kinds if t.capabilities.max_message_length and t.name != "test-panel"),
                          key=lambda t: t.capabilities.max_message_length or 0)
            assert f'<option value="{limited.name}" selected' in page.text  # the default preview is the one that splits
            shown = await chat_turn(client, agent_id, "How much is the <b>sourdough</b> loaf?")
            assert "How much is the &lt;b&gt;sourdough&lt;/b&gt; loaf?" in shown
            assert ">offline<" in shown and "$6" in shown and "baked overnight" in shown.split("<details")[0] and "**baked**" not in shown.split("<details")[0]  # as plain text
            assert "Bread &lt;i&gt;notes&lt;/i&gt;" in shown and "score " in shown  # the passage, its source and score
            assert "<script>alert(1)</script>" not in shown and "&lt;script&gt;alert(1)&lt;/script&gt;" in shown
            assert f"As a {limited.name} channel sends it: 1 message" in shown
            empty = await client.post(f"/dashboard/agents/{agent_id}/test", {"text": "  ", "session": "s1"}, headers={"HX-Request": "true"})
            assert empty.status_code == 422 and "message: this field is required" in empty.text
            bad_session = await client.post(f"/dashboard/agents/{agent_id}/test", {"text": "hi", "session": "<x>"})
            assert bad_session.status_code == 422 and "reload the page" in bad_session.text
            plain = await chat_turn(client, agent_id, "When do you open?", preview="no-such-kind")
            assert "7 am" in plain and f"As a {limited.name} channel sends it" in plain  # unknown kind: the default


async def test_the_test_panel_shows_a_model_tool_call_and_its_result(tmp_path: Path) -> None:
    with FakeOpenAI() as fake:
        async with builder_server(tmp_path) as server:
            owner = await add_member(server.runtime)
            async with server.runtime.db.session() as session:
                workspace = await session.get(Workspace, owner.workspace_id)
                assert workspace is not None
                await connect_integration(session, server.runtime.vault, workspace, provider="openai", name="fake-ai",
                                          public={"base_url": fake.base_url}, secrets={"api_key": "sk-test-dashboard-key"})
            async with signed_in_client(server, owner) as client:
                agent_id = await create_agent(client, "desk")
                saved = await client.post(f"/dashboard/agents/{agent_id}", builder_values(**{
                    "model_settings.integration": "fake-ai", "model_settings.model": "gpt-4o-mini", "model_settings.temperature": "0.2",
                    "tools.0.type": "ticket", "tools.0.name": "open_ticket", "tools.0.config.api_url": "https://t.example.com",
                }))
                assert saved.status_code == 303, saved.text[:3000]
                listing = await client.get("/dashboard/agents")
                assert "gpt-4o-mini (fake-ai)" in listing.text
                long_reply = "\n\n".join(f"**Step {i}.** Unplug the oven, wait a minute and check the fuse number {i}." for i in range(40))
                fake.queue_reply(long_reply)
                split = await chat_turn(client, agent_id, "how do I reset the oven?")
                whatsapp_like = min((t for t in server.runtime.plugins.channels if t.capabilities.max_message_length),
                                    key=lambda t: t.capabilities.max_message_length or 0)
                limit = whatsapp_like.capabilities.max_message_length or 0
                parts = re.findall(r'<pre class="bubble preview-part">(.*?)</pre><span class="help">(\d+) characters', split, re.S)
                assert len(parts) >= 2 and all(int(count) <= limit for _, count in parts)  # split within the limit
                if whatsapp_like.capabilities.formatting != "markdown":
                    assert "**Step 1.**" not in parts[0][0]  # shaped in that channel's dialect
                assert split.count('class="bubble agent"') == 1  # stored whole on the test channel
                fake.queue_tool_call("open_ticket", {"summary": "broken <oven>"})
                fake.queue_reply("Done: ticket **T-17** is open. <img src=x onerror=alert(1)>")
                shown = await chat_turn(client, agent_id, "my oven is broken")
                assert "open_ticket" in shown and "broken &lt;oven&gt;" in shown
                assert "ticket T-17 opened for support: broken &lt;oven&gt;" in shown  # the tool's result
                assert "answered" in shown and "<img src=x" not in shown and "&lt;img src=x onerror=alert(1)&gt;" in shown
                assert "sk-test-dashboard-key" not in shown
                assert "Model: <code>gpt-4o-mini</code>" in shown  # the trace's model and tokens
                assert re.search(r"Tokens: \d+ prompt \+ \d+ completion = \d+", shown)
                assert "https://t.example.com" not in shown.split('class="tool-calls"')[1]  # the tool's config is not its arguments
                assert fake.chat_requests[-1].tool_names == ["open_ticket"]


async def test_another_workspaces_ids_are_not_found_and_posts_need_the_csrf_token(tmp_path: Path) -> None:
    async with builder_server(tmp_path) as server:
        owner = await add_member(server.runtime)
        stranger = await add_member(server.runtime, "Other Shop", email="x@example.com")
        async with signed_in_client(server, owner) as client:
            agent_id = await create_agent(client, "desk")
            await chat_turn(client, agent_id, "hello")
            async with server.runtime.db.sessions() as session:
                from callable_agents.core.models import Message

                message_id = (await session.scalars(select(Message.id).where(Message.direction == "inbound"))).first()
            refused = await client.post(f"/dashboard/agents/{agent_id}", builder_values(), csrf=False)
            assert refused.status_code == 403
            assert (await client.post("/dashboard/agents", {"name": "x"}, csrf=False)).status_code == 403
        async with signed_in_client(server, stranger) as other:
            for path in (f"/dashboard/agents/{agent_id}", f"/dashboard/agents/{agent_id}/tool-form?new_tool_type=ticket",
                         f"/dashboard/agents/{agent_id}/test/{message_id}"):
                assert (await other.get(path)).status_code == 404, path
            for path, data in ((f"/dashboard/agents/{agent_id}", builder_values()), (f"/dashboard/agents/{agent_id}/delete", {}),
                               (f"/dashboard/agents/{agent_id}/test", {"text": "hi", "session": "s1"})):
                assert (await other.post(path, data)).status_code == 404, path
            for path in ("/dashboard/agents", "/dashboard/tools"):  # lists show their own workspace only
                listed = await other.get(path)
                assert listed.status_code == 200 and agent_id not in listed.text and ">desk<" not in listed.text
            # Their own agent cannot read the first workspace's test message either.
            own_id = await create_agent(other, "mine")
            assert (await other.get(f"/dashboard/agents/{own_id}/test/{message_id}")).status_code == 404
        assert (await _agent_row(server, agent_id)).name == "desk"


async def test_a_tool_whose_plugin_is_gone_is_kept_until_removed(tmp_path: Path) -> None:
    async with builder_server(tmp_path) as server:
        owner = await add_member(server.runtime)
        async with server.runtime.db.session() as session:  # stored while its plugin was loaded
            agent = Agent(workspace_id=owner.workspace_id, name="desk", tools=[{"type": "gone", "name": "old_tool", "config": {"a": 1}}])
            session.add(agent)
            await session.flush()
            agent_id = agent.id
        async with signed_in_client(server, owner) as client:
            page = await client.get(f"/dashboard/agents/{agent_id}")
            assert "No loaded plugin provides the tool type “gone”" in page.text
            config = re.search(r'name="tools.0.config_json" value="([^"]*)"', page.text)
            assert config is not None
            kept = builder_values(**{"tools.0.type": "gone", "tools.0.name": "old_tool", "tools.0.config_json": html.unescape(config.group(1))})
            refused = await client.post(f"/dashboard/agents/{agent_id}", kept)
            assert refused.status_code == 422 and 'id="e-tools.0.type"' in refused.text and "unknown tool type &#39;gone&#39;" in refused.text
            assert (await _agent_row(server, agent_id)).tools == [{"type": "gone", "name": "old_tool", "config": {"a": 1}}]
            removed = await client.post(f"/dashboard/agents/{agent_id}", {**kept, "tools.0.remove": "on"})
            assert removed.status_code == 303 and (await _agent_row(server, agent_id)).tools == []
