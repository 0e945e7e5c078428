"""Agents as code: ``apply`` is idempotent, writes nothing when invalid, names line and field.

Files are real YAML files in a temporary folder; sources are really ingested (local WordLlama
embeddings), so the files stay small. The packaged demo file runs once, on SQLite.
"""

from __future__ import annotations

import asyncio
import io
import os
import socket
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pypdf
import pytest
import uvicorn
from sqlalchemy import func, select
from starlette.applications import Starlette
from starlette.testclient import TestClient

from callable_agents.core.store.agents import get_agent
from callable_agents.apply import ApplyError, ApplyReport, apply_file, parse_yaml
from callable_agents.apply.document import MAX_CHARS, MAX_DEPTH
from callable_agents.core.errors import InvalidInput
from callable_agents.core.store.integrations import connect_integration
from callable_agents.core.store.workspaces import create_workspace
from callable_agents.core.bootstrap import close_runtime, open_runtime
from callable_agents.core.config import Settings
from callable_agents.demo import apply_demo, apply_demo_report, demo_file_text, demo_routes
from callable_agents.core.knowledge import KnowledgeService
from callable_agents.core.models import Agent, Channel, Chunk, KnowledgeBase, Source, Workspace
from callable_agents.core.runtime import Runtime
from callable_agents.core.contracts.tools import ToolContext
from tests.conftest import make_settings
from tests.core.test_agents import kit_plugins

SHOP_YAML = """\
version: 1
workspace:
  slug: shop
  name: The Shop
knowledge_bases:
  - name: faq
    sources:
      - kind: text
        title: Opening hours
        text: |
          We are open Monday to Friday from 9:00 to 17:00 and closed at weekends.
      - kind: text
        title: Returns
        text: |
          Unused items can be returned within 30 days with the receipt for a full refund.
agents:
  - name: assistant
    system_prompt: You help customers of The Shop.
    business_info:
      name: The Shop
      phone: "+44 20 7946 0000"
    knowledge_bases: [faq]
    greeting: Hello!
    tools:
      - type: stamp
        name: stamp_form
        config:
          url: "${CALLABLE_BASE_URL}/stamp"
          headers:
            Accept: application/json
      - type: handoff
        name: handoff
        config: {}
channels:
  - name: web
    kind: test_chat
    agent: assistant
    slug: shop-chat
    config:
      allowed_origins: ["http://localhost:*"]
"""


@pytest.fixture
async def kit_runtime(settings: Settings) -> AsyncIterator[Runtime]:
    """SQLite and PostgreSQL, with the test kit's tool and channel types."""
    runtime = await open_runtime(settings, plugins=kit_plugins())
    try:
        yield runtime
    finally:
        await close_runtime(runtime)


@pytest.fixture
async def sqlite_kit_runtime(sqlite_settings: Settings) -> AsyncIterator[Runtime]:
    runtime = await open_runtime(sqlite_settings, plugins=kit_plugins())
    try:
        yield runtime
    finally:
        await close_runtime(runtime)


async def apply_text(runtime: Runtime, folder: Path, text: str, **options: Any) -> ApplyReport:
    path = folder / "shop.yaml"
    path.write_text(text, encoding="utf-8")
    return await apply_file(runtime, path, **options)


def line_of(text: str, snippet: str) -> int:
    """The 1-based line of the first line containing ``snippet``."""
    for number, line in enumerate(text.splitlines(), start=1):
        if snippet in line:
            return number
    raise AssertionError(f"{snippet!r} not in the text")


async def row_versions(runtime: Runtime) -> dict[str, Any]:
    """Every declared row's ``updated_at``, and every passage id: what an apply could touch."""
    versions: dict[str, Any] = {}
    async with runtime.db.session() as session:
        for model in (Workspace, KnowledgeBase, Source, Agent, Channel):
            for row in (await session.scalars(select(model))).all():
                versions[f"{model.__tablename__}:{row.id}"] = row.updated_at
        versions["chunks"] = sorted((await session.scalars(select(Chunk.id))).all())
        versions["index_versions"] = sorted((await session.scalars(select(KnowledgeBase.index_version))).all())
    return versions


async def count(runtime: Runtime, model: type) -> int:
    async with runtime.db.session() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


# --------------------------------------------------------------------------- idempotency


async def test_applying_a_file_twice_changes_nothing_the_second_time(kit_runtime: Runtime, tmp_path: Path) -> None:
    first = await apply_text(kit_runtime, tmp_path, SHOP_YAML)
    assert [str(item) for item in first.items] == [
        "created workspace shop",
        "created knowledge base faq",
        "created source faq/Opening hours",
        "created source faq/Returns",
        "created agent assistant",
        "created channel web",
    ]
    assert first.failed_sources == []
    async with kit_runtime.db.session() as session:
        workspace = await session.scalar(select(Workspace).where(Workspace.slug == "shop"))
        assert workspace is not None and workspace.name == "The Shop"
        agent = await get_agent(session, workspace.id, "assistant")
        sources = (await session.scalars(select(Source).where(Source.workspace_id == workspace.id))).all()
    assert {source.status for source in sources} == {"ready"}
    assert agent.tools[0]["config"]["url"] == f"{kit_runtime.settings.base_url}/stamp"
    assert agent.tools[0]["config"]["headers"] == {"Accept": "application/json"}
    before = await row_versions(kit_runtime)

    second = await apply_text(kit_runtime, tmp_path, SHOP_YAML)
    assert not second.changed
    assert [item.action for item in second.items] == ["unchanged"] * 6
    assert await row_versions(kit_runtime) == before


async def test_a_changed_source_is_updated_and_reindexed_alone(sqlite_kit_runtime: Runtime, tmp_path: Path) -> None:
    runtime = sqlite_kit_runtime
    await apply_text(runtime, tmp_path, SHOP_YAML)
    before = await row_versions(runtime)
    changed_text = SHOP_YAML.replace("within 30 days", "within 60 days").replace("greeting: Hello!", "greeting: Hi!")
    report = await apply_text(runtime, tmp_path, changed_text)
    assert [str(item) for item in report.items] == [
        "unchanged workspace shop",
        "unchanged knowledge base faq",
        "unchanged source faq/Opening hours",
        "updated source faq/Returns (content)",
        "updated agent assistant",
        "unchanged channel web",
    ]
    after = await row_versions(runtime)
    async with runtime.db.session() as session:
        returns = await session.scalar(select(Source).where(Source.title == "Returns"))
        hours = await session.scalar(select(Source).where(Source.title == "Opening hours"))
        assert returns is not None and hours is not None
        texts = (await session.scalars(select(Chunk.text).where(Chunk.source_id == returns.id))).all()
    assert returns.status == "ready" and any("60 days" in text for text in texts)
    assert after[f"sources:{hours.id}"] == before[f"sources:{hours.id}"]
    assert after[f"sources:{returns.id}"] > before[f"sources:{returns.id}"]


async def test_dry_run_reports_changes_and_writes_nothing(sqlite_kit_runtime: Runtime, tmp_path: Path) -> None:
    runtime = sqlite_kit_runtime
    dry = await apply_text(runtime, tmp_path, SHOP_YAML, dry_run=True)
    assert dry.dry_run and dry.changed
    assert "created agent assistant" in [str(item) for item in dry.items]
    assert dry.lines()[-1] == "dry run: nothing was written"
    for model in (Workspace, KnowledgeBase, Source, Agent, Channel):
        assert await count(runtime, model) == 0, model

    await apply_text(runtime, tmp_path, SHOP_YAML)
    before = await row_versions(runtime)
    dry = await apply_text(runtime, tmp_path, SHOP_YAML.replace("greeting: Hello!", "greeting: Hi!"), dry_run=True)
    assert [str(item) for item in dry.items if item.action != "unchanged"] == ["updated agent assistant"]
    assert await row_versions(runtime) == before
    async with runtime.db.session() as session:
        assert (await session.scalar(select(Agent.greeting))) == "Hello!"


async def test_workspace_can_be_overridden(sqlite_kit_runtime: Runtime, tmp_path: Path) -> None:
    report = await apply_text(sqlite_kit_runtime, tmp_path, SHOP_YAML.replace("slug: shop-chat", "slug: other-chat"), workspace="other")
    assert report.workspace == "other"
    async with sqlite_kit_runtime.db.session() as session:
        slugs = (await session.scalars(select(Workspace.slug))).all()
    assert slugs == ["other"]


async def test_file_sources_are_read_relative_to_the_yaml_file(sqlite_kit_runtime: Runtime, tmp_path: Path) -> None:
    if "file" not in sqlite_kit_runtime.plugins.loaders:
        pytest.skip("no file loader plugin is loaded")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "care.md").write_text("# Care\nWash the mugs by hand; they are not dishwasher safe.\n")
    text = SHOP_YAML.replace(
        "      - kind: text\n        title: Returns",
        "      - kind: file\n        path: docs/care.md\n      - kind: text\n        title: Returns",
    )
    report = await apply_text(sqlite_kit_runtime, tmp_path, text)
    assert "created source faq/docs/care.md" in [str(item) for item in report.items]
    assert report.failed_sources == []
    again = await apply_text(sqlite_kit_runtime, tmp_path, text)
    assert not again.changed

    missing = text.replace("docs/care.md", "docs/gone.md")
    with pytest.raises(ApplyError) as caught:
        await apply_text(sqlite_kit_runtime, tmp_path, missing)
    assert str(caught.value) == (
        f"{tmp_path / 'shop.yaml'}:{line_of(missing, 'docs/gone.md')}: knowledge_bases[0].sources[1].path: "
        "no file at 'docs/gone.md' (paths are relative to the YAML file)"
    )


# --------------------------------------------------------------------------- invalid files

Mutation = Callable[[str], str]


def replace(old: str, new: str) -> Mutation:
    def mutate(text: str) -> str:
        assert old in text, old
        return text.replace(old, new, 1)

    return mutate


INVALID_FILES: list[tuple[str, Mutation, str, str, str]] = [
    # (case, mutation, line marker, field path, message start)
    ("syntax", replace("greeting: Hello!", "greeting: Hello: there"), "greeting: Hello: there", "", "invalid YAML: mapping values are not allowed here"),
    ("unknown field", replace("    greeting: Hello!", "    greeting: Hello!\n    colour: blue"), "colour: blue", "agents[0].colour", "unknown field (expected one of: name, kind, "),
    ("wrong type", replace("    greeting: Hello!", "    greeting: Hello!\n    model_settings:\n      temperature: hot"), "temperature: hot", "agents[0].model_settings.temperature", "expected a valid number"),
    ("out of range", replace("    greeting: Hello!", "    greeting: Hello!\n    model_settings: {temperature: 2.5}"), "temperature: 2.5", "agents[0].model_settings.temperature", "expected less than or equal to 2"),
    ("unknown tool type", replace("type: handoff", "type: teleport"), "type: teleport", "agents[0].tools[1].type", "unknown tool type 'teleport'; loaded: "),
    ("tool config", replace('url: "${CALLABLE_BASE_URL}/stamp"', 'url: "ftp://files.example/stamp"'), "ftp://files", "agents[0].tools[0].config.url", "expected an http(s) URL"),
    ("unknown knowledge base", replace("knowledge_bases: [faq]", "knowledge_bases: [faq, menu]"), "knowledge_bases: [faq, menu]", "agents[0].knowledge_bases[1]", "no knowledge base named 'menu' in this workspace"),
    ("inlined secret", replace('      allowed_origins: ["http://localhost:*"]', '      allowed_origins: ["http://localhost:*"]\n      auth_token: 0123456789abcdef'), "auth_token:", "channels[0].config.auth_token", "looks like a secret written into the file; secrets are never written into an apply file: connect an integration (`callable integrations connect"),
    ("inlined header secret", replace("Accept: application/json", 'Authorization: "Bearer abc123def456"'), "Bearer abc123", "agents[0].tools[0].config.headers.Authorization", "looks like a secret written into the file"),
    ("pasted api key", replace("system_prompt: You help customers of The Shop.", "system_prompt: sk-proj-0123456789abcdefghij"), "sk-proj-", "agents[0].system_prompt", "looks like an API key written into the file"),
    ("missing integration", replace("    greeting: Hello!", "    greeting: Hello!\n    model_settings: {integration: openai-main, model: gpt-4o-mini}"), "integration: openai-main", "agents[0].model_settings.integration", "no integration named 'openai-main' in this workspace; connect one with `callable integrations connect openai --name openai-main`"),
    ("voice agent on a channel", replace("  - name: assistant\n", "  - name: assistant\n    kind: voice\n"), "    agent: assistant", "channels[0].agent", "'assistant' is a voice agent and cannot answer on a test_chat channel; attach a chat agent"),
    ("unknown variable", replace("${CALLABLE_BASE_URL}/stamp", "${STAMP_URL}/stamp"), "${STAMP_URL}", "agents[0].tools[0].config.url", "unknown variable ${STAMP_URL}; supported: ${CALLABLE_BASE_URL}"),
    ("duplicate key", replace("    greeting: Hello!", "    greeting: Hello!\n    greeting: Hi!"), "greeting: Hi!", "agents[0].greeting", "duplicate key (each key may appear once)"),
    ("missing workspace slug", replace("  slug: shop\n", ""), "workspace:", "workspace.slug", "required"),
    ("unknown source kind", replace("      - kind: text\n        title: Returns", "      - kind: fax\n        title: Returns"), "kind: fax", "knowledge_bases[0].sources[1].kind", "unknown source kind 'fax'; loaded: "),
    ("missing source text", replace("        title: Returns\n        text: |\n          Unused items can be returned within 30 days with the receipt for a full refund.\n", "        title: Returns\n"), "      - kind: text\n        title: Returns\n", "knowledge_bases[0].sources[1].text", "required for text sources"),
    ("unknown channel type", replace("kind: test_chat", "kind: smoke_signals"), "kind: smoke_signals", "channels[0].kind", "unknown channel type 'smoke_signals'; loaded: "),
    ("channel config", replace('allowed_origins: ["http://localhost:*"]', "theme: neon"), "theme: neon", "channels[0].config.theme", "expected 'light' or 'dark'"),
    ("duplicate agent", replace("channels:\n", "  - name: assistant\nchannels:\n"), "  - name: assistant\nchannels:", "agents[1].name", "agent 'assistant' is declared twice"),
    ("bad version", replace("version: 1", "version: 2"), "version: 2", "version", "expected 1"),
]


@pytest.mark.parametrize(
    ("mutate", "marker", "path", "message"),
    [case[1:] for case in INVALID_FILES],
    ids=[case[0] for case in INVALID_FILES],
)
async def test_an_invalid_file_names_line_and_field_and_writes_nothing(
    sqlite_kit_runtime: Runtime, tmp_path: Path, mutate: Mutation, marker: str, path: str, message: str
) -> None:
    text = mutate(SHOP_YAML)
    if "\n" in marker:  # a marker spanning lines points at its first line
        line = text[: text.index(marker)].count("\n") + 1
    else:
        line = line_of(text, marker)
    with pytest.raises(ApplyError if path else Exception) as caught:
        await apply_text(sqlite_kit_runtime, tmp_path, text)
    expected = f"{tmp_path / 'shop.yaml'}:{line}: " + (f"{path}: " if path else "") + message
    assert str(caught.value).startswith(expected), str(caught.value)
    for model in (Workspace, KnowledgeBase, Source, Agent, Channel):
        assert await count(sqlite_kit_runtime, model) == 0, model


async def test_every_problem_is_reported_at_once_in_file_order(sqlite_kit_runtime: Runtime, tmp_path: Path) -> None:
    text = SHOP_YAML.replace("type: handoff", "type: teleport").replace("greeting: Hello!", "greeting: [Hello]")
    text = text.replace("kind: test_chat", "kind: smoke_signals")
    with pytest.raises(ApplyError) as caught:
        await apply_text(sqlite_kit_runtime, tmp_path, text)
    found = [(line, str(problem)) for line, problem in caught.value.problems]
    assert found == [
        (line_of(text, "greeting: [Hello]"), "agents[0].greeting: expected a valid string"),
        (line_of(text, "type: teleport"), f"agents[0].tools[1].type: unknown tool type 'teleport'; loaded: {', '.join(sorted(sqlite_kit_runtime.plugins.tools.types))}"),
        (line_of(text, "kind: smoke_signals"), f"channels[0].kind: unknown channel type 'smoke_signals'; loaded: {', '.join(sorted(sqlite_kit_runtime.plugins.channels.types))}"),
    ]


async def test_a_public_slug_taken_by_another_workspace_is_refused(sqlite_kit_runtime: Runtime, tmp_path: Path) -> None:
    await apply_text(sqlite_kit_runtime, tmp_path, SHOP_YAML)
    with pytest.raises(ApplyError) as caught:
        await apply_text(sqlite_kit_runtime, tmp_path, SHOP_YAML, workspace="rival")
    assert str(caught.value) == (
        f"{tmp_path / 'shop.yaml'}:{line_of(SHOP_YAML, 'slug: shop-chat')}: channels[0].slug: "
        "'shop-chat' is already used by another channel; pick another slug"
    )
    async with sqlite_kit_runtime.db.session() as session:
        assert (await session.scalars(select(Workspace.slug))).all() == ["shop"]


async def test_a_missing_file_is_named(sqlite_kit_runtime: Runtime, tmp_path: Path) -> None:
    with pytest.raises(Exception, match=r"-f: no file at '.*nothing.yaml'"):
        await apply_file(sqlite_kit_runtime, tmp_path / "nothing.yaml")


# --------------------------------------------------------------------------- the demo


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_the_demo_applies_twice_without_changes_and_its_tools_work(tmp_path: Path) -> None:
    port = _free_port()
    settings = make_settings(tmp_path / "data", auto_migrate=True, port=port)
    runtime = await open_runtime(settings, plugins=kit_plugins())
    server = uvicorn.Server(uvicorn.Config(Starlette(routes=demo_routes()), host="127.0.0.1", port=port, log_level="warning"))
    serving = asyncio.create_task(server.serve())
    try:
        links = await apply_demo(runtime)
        before = await row_versions(runtime)
        again = await apply_demo_report(runtime)
        assert not again.changed, again.lines()
        assert await row_versions(runtime) == before

        async with runtime.db.session() as session:
            workspace = await session.scalar(select(Workspace).where(Workspace.slug == "demo"))
            assert workspace is not None
            agent = await get_agent(session, workspace.id, "assistant")
            sources = (await session.scalars(select(Source).where(Source.workspace_id == workspace.id))).all()
            channels = (await session.scalars(select(Channel).where(Channel.workspace_id == workspace.id))).all()
        assert len(sources) >= 12 and {source.status for source in sources} == {"ready"}
        assert {tool["type"] for tool in agent.tools} == {"lookup", "send_info", "handoff"}
        assert agent.model_settings == {"max_tool_rounds": 4}  # offline mode
        for kind, label in (("page", ("Chat page", "/chat/bella")), ("widget", ("Widget test page", "/demo/widget"))):
            if kind in runtime.plugins.channels:
                assert kind in {channel.kind for channel in channels} and label in links
            else:
                assert f"skipped channel {'chat-page' if kind == 'page' else 'website-widget'}" in " ".join(again.notes)
                assert label not in links

        # The knowledge base answers a delivery question from the delivery source.
        passages = await KnowledgeService.of(runtime).search(
            workspace.id, agent.knowledge_base_ids, "how much is delivery to Millbrook?", k=3
        )
        assert passages and passages[0].title == "Delivery area and fees"

        # The lookup tool reaches the demo order API on this server's base URL.
        while not server.started:
            await asyncio.sleep(0.02)
        spec = next(tool for tool in agent.tools if tool["type"] == "lookup")
        tool_type = runtime.plugins.tools.get("lookup")
        context = ToolContext(
            runtime=runtime, workspace_id=workspace.id, agent_id=agent.id, tool_name=spec["name"],
            config=tool_type.config_schema.model_validate(spec["config"]),
        )
        answer = await tool_type.factory(context).ainvoke({"order_id": "BB-1042"})
        assert "in_progress" in answer and "Happy 40th Sam" in answer
        missing = await tool_type.factory(context).ainvoke({"order_id": "BB-9999"})
        assert "404" in missing or "order_not_found" in missing
    finally:
        server.should_exit = True
        await serving
        await close_runtime(runtime)


def test_the_demo_api_serves_orders_the_menu_and_the_allergen_sheet() -> None:
    client = TestClient(Starlette(routes=demo_routes()))
    order = client.get("/demo-api/orders/bb1043")
    assert order.status_code == 200 and order.json()["status"] == "out_for_delivery"
    unknown = client.get("/demo-api/orders/BB-0001")
    assert unknown.status_code == 404 and unknown.json()["error"] == "order_not_found"

    menu = client.get("/demo-api/menu.pdf")
    assert menu.headers["content-type"] == "application/pdf"
    text = "".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(menu.content)).pages)
    assert "Butter croissant: £1.90" in text and "Bella's Bakery & Café" in text

    allergens = client.get("/demo-api/allergens")
    assert "coeliac" in allergens.text and "<h2>Gluten-free</h2>" in allergens.text
    assert "CALLABLE_BASE_URL" in demo_file_text()


async def test_aliases_cannot_blow_a_small_file_up(sqlite_kit_runtime: Runtime, tmp_path: Path) -> None:
    levels = ["a: &a [x, x, x, x, x, x, x, x, x]"]
    for index in range(1, 9):
        previous, name = chr(96 + index), chr(97 + index)
        levels.append(f"{name}: &{name} [" + ", ".join([f"*{previous}"] * 9) + "]")
    bomb = "\n".join(levels) + "\n"  # 9**9 values once expanded, from 9 lines
    with pytest.raises(Exception, match=r"shop.yaml: the document has more than 200000 values"):
        await apply_text(sqlite_kit_runtime, tmp_path, bomb)


# --------------------------------------------------------------------------- nesting and aliases


def nested(depth: int) -> str:
    """A flow list nested ``depth`` levels deep."""
    return "[" * depth + "x" + "]" * depth


def test_nesting_is_refused_past_the_limit_in_one_line_naming_its_line() -> None:
    assert MAX_DEPTH == 32
    data, _lines = parse_yaml("a: " + nested(MAX_DEPTH - 1) + "\n", "f.yaml")  # the mapping is level 1
    value = data["a"]
    for _level in range(MAX_DEPTH - 1):
        assert isinstance(value, list) and len(value) == 1
        value = value[0]
    assert value == "x"
    with pytest.raises(InvalidInput) as caught:
        parse_yaml("a: " + nested(MAX_DEPTH) + "\n", "f.yaml")
    assert str(caught.value) == (
        "f.yaml:1: expected values nested at most 32 levels deep (lists and mappings inside each other, "
        "counting what aliases repeat); flatten this part of the file"
    )
    for depth in (1_000, 100_000):  # deep enough to exhaust Python's recursion in PyYAML's composer
        text = "version: 1\nworkspace: {slug: shop}\nagents:\n  - name: a\n    business_info:\n      deep: " + nested(depth) + "\n"
        started = time.monotonic()
        with pytest.raises(InvalidInput, match=r"^f\.yaml:6: expected values nested at most 32 levels deep"):
            parse_yaml(text, "f.yaml")
        assert time.monotonic() - started < 5


def test_aliases_cannot_nest_past_the_limit_or_contain_themselves() -> None:
    text = f"a: &a {nested(20)}\nb: {'[' * 20}*a{']' * 20}\n"  # 41 levels once *a is expanded
    with pytest.raises(InvalidInput, match=r"^f\.yaml:1: expected values nested at most 32 levels deep"):
        parse_yaml(text, "f.yaml")
    with pytest.raises(InvalidInput) as caught:
        parse_yaml("a: &a [x, *a]\n", "f.yaml")
    assert str(caught.value) == (
        "f.yaml:1: expected an alias to refer to a value that does not contain it (recursive values cannot be stored)"
    )


def merge_bomb(levels: int, width: int) -> str:
    """Aliases multiplied through merge keys (``<<``), which carry values into the document."""
    rows = ["base:", "  <<:", "    l0: &l0 [" + ", ".join(["x"] * width) + "]"]
    for level in range(1, levels):
        rows.append(f"    l{level}: &l{level} {{" + ", ".join(f"k{key}: *l{level - 1}" for key in range(width)) + "}")
    rows.append(f"top: {{<<: *l{levels - 1}}}")
    return "\n".join(rows) + "\n"


@pytest.mark.parametrize(("levels", "width"), [(6, 8), (12, 30)], ids=["8**6", "30**12"])
def test_aliases_expanded_through_merge_keys_are_counted_and_refused_at_once(levels: int, width: int) -> None:
    started = time.monotonic()
    with pytest.raises(InvalidInput) as caught:
        parse_yaml(merge_bomb(levels, width), "f.yaml")
    assert str(caught.value) == "f.yaml: the document has more than 200000 values (counting what aliases repeat)"
    assert time.monotonic() - started < 2


# --------------------------------------------------------------------------- where file sources may be read


def with_file_sources(*paths: str) -> str:
    """SHOP_YAML with one file source per path, before the Returns text source."""
    sources = "".join(f"      - kind: file\n        path: {path}\n" for path in paths)
    return SHOP_YAML.replace("      - kind: text\n        title: Returns", sources + "      - kind: text\n        title: Returns")


async def test_file_sources_outside_the_folder_in_the_data_dir_or_key_files_are_refused_every_one_at_once(
    sqlite_kit_runtime: Runtime, tmp_path: Path
) -> None:
    runtime = sqlite_kit_runtime
    data_dir = runtime.settings.data_dir.resolve()
    assert data_dir == (tmp_path / "data").resolve()
    (data_dir / "master.key").write_text("not a real key, but it must never be read\n")
    project = tmp_path / "project"
    (project / "keys").mkdir(parents=True)
    (project / "care.md").write_text("# Care\nWash the mugs by hand.\n")
    (project / "keys" / "server.pem").write_text("-----BEGIN PRIVATE KEY-----\n")
    (project / "tls.key").write_text("key\n")
    (project / "master.key.new").write_text("key\n")
    (project / "outside.md").symlink_to(data_dir / "master.key")
    (tmp_path / "notes.md").write_text("# Notes\nOutside the project folder.\n")
    (project / "notes.md").symlink_to(tmp_path / "notes.md")
    (project / "data").symlink_to(data_dir, target_is_directory=True)
    paths = [
        "../data/master.key",
        str(data_dir / "master.key"),
        "care.md",
        "outside.md",
        "notes.md",
        "keys/server.pem",
        "tls.key",
        "master.key.new",
        "../notes.md",
    ]
    text = with_file_sources(*paths)
    shop = project / "shop.yaml"
    shop.write_text(text)
    with pytest.raises(ApplyError) as caught:
        await apply_file(runtime, shop)
    found = [(line, str(problem)) for line, problem in caught.value.problems]
    root = repr(str(project.resolve()))

    def at(index: int, message: str) -> tuple[int | None, str]:
        return line_of(text, f"path: {paths[index]}"), f"knowledge_bases[0].sources[{index + 1}].path: {message}"

    outside = f"is outside it (give another folder with `callable apply --source-root DIR`)"
    assert found == [
        at(0, f"expected a path inside the YAML file's folder {root}; '../data/master.key' {outside}"),
        at(1, f"expected a path inside the YAML file's folder {root}; {paths[1]!r} {outside}"),
        at(3, f"'outside.md' is a symbolic link (or goes through one) that leads out of the YAML file's folder {root}; copy the file into it instead"),
        at(4, f"'notes.md' is a symbolic link (or goes through one) that leads out of the YAML file's folder {root}; copy the file into it instead"),
        at(5, "'keys/server.pem' looks like a key file (master.key, master.key.new, *.key, *.pem); key files are never read as knowledge"),
        at(6, "'tls.key' looks like a key file (master.key, master.key.new, *.key, *.pem); key files are never read as knowledge"),
        at(7, "'master.key.new' looks like a key file (master.key, master.key.new, *.key, *.pem); key files are never read as knowledge"),
        at(8, f"expected a path inside the YAML file's folder {root}; '../notes.md' {outside}"),
    ]
    assert str(caught.value).startswith(f"{shop}:{found[0][0]}: knowledge_bases[0].sources[1].path: expected a path inside")
    for model in (Workspace, KnowledgeBase, Source, Agent, Channel):
        assert await count(runtime, model) == 0, model


async def test_a_source_root_widens_where_files_are_read_but_never_to_the_data_dir(
    sqlite_kit_runtime: Runtime, tmp_path: Path
) -> None:
    runtime = sqlite_kit_runtime
    if "file" not in runtime.plugins.loaders:
        pytest.skip("no file loader plugin is loaded")
    data_dir = runtime.settings.data_dir.resolve()
    (data_dir / "notes.md").write_text("# Notes\nIn the data folder.\n")
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "care.md").write_text("# Care\nWash the mugs by hand; they are not dishwasher safe.\n")
    project = tmp_path / "project"
    project.mkdir()
    (project / "linked.md").symlink_to(tmp_path / "shared" / "care.md")  # a link that stays inside the root
    shop = project / "shop.yaml"

    text = with_file_sources("../shared/care.md", "linked.md")
    shop.write_text(text)
    with pytest.raises(ApplyError, match=r"sources\[1\]\.path: expected a path inside the YAML file's folder"):
        await apply_file(runtime, shop)
    report = await apply_file(runtime, shop, source_root=tmp_path)
    assert {"created source faq/../shared/care.md", "created source faq/linked.md"} <= {str(item) for item in report.items}
    assert report.failed_sources == []

    text = with_file_sources("../data/notes.md")
    shop.write_text(text)
    with pytest.raises(ApplyError) as caught:
        await apply_file(runtime, shop, source_root=tmp_path)
    assert str(caught.value) == (
        f"{shop}:{line_of(text, 'path: ../data/notes.md')}: knowledge_bases[0].sources[1].path: '../data/notes.md' is in "
        f"the server's data folder (settings.data_dir, {str(data_dir)!r}), which holds its database and keys; file "
        "sources are never read from it"
    )
    with pytest.raises(InvalidInput, match=r"^--source-root: no folder at '.*nowhere'$"):
        await apply_file(runtime, shop, source_root=tmp_path / "nowhere")


# --------------------------------------------------------------------------- secret references


async def shop_with_crm(runtime: Runtime) -> None:
    """The shop workspace with an http integration ``crm`` holding an API key (no token)."""
    async with runtime.db.session() as session:
        workspace = await create_workspace(session, runtime.vault, "The Shop", "shop")
        await connect_integration(
            session, runtime.vault, workspace, provider="http", name="crm", public={}, secrets={"api_key": "crm-key-0123456789"}
        )


LOOKUP_TOOL = """\
      - type: lookup
        name: order_status
        config:
          description: Look up an order.
          url: "https://crm.example/orders"
          headers:
            X-Api-Key: "{{secret:crm.api_key}}"
"""


async def test_secret_references_to_the_workspaces_integrations_are_stored_as_written(
    kit_runtime: Runtime, tmp_path: Path
) -> None:
    await shop_with_crm(kit_runtime)
    text = SHOP_YAML.replace("Accept: application/json", 'Authorization: "Bearer {{secret:crm.api_key}}"')
    text = text.replace("      - type: handoff\n", LOOKUP_TOOL + "      - type: handoff\n")
    report = await apply_text(kit_runtime, tmp_path, text)
    assert "created agent assistant" in [str(item) for item in report.items]
    async with kit_runtime.db.session() as session:
        workspace = await session.scalar(select(Workspace).where(Workspace.slug == "shop"))
        assert workspace is not None
        agent = await get_agent(session, workspace.id, "assistant")
    assert agent.tools[0]["config"]["headers"] == {"Authorization": "Bearer {{secret:crm.api_key}}"}
    assert agent.tools[1]["config"]["headers"] == {"X-Api-Key": "{{secret:crm.api_key}}"}
    assert not (await apply_text(kit_runtime, tmp_path, text)).changed


async def test_every_unresolvable_secret_reference_is_reported_with_its_line(
    sqlite_kit_runtime: Runtime, tmp_path: Path
) -> None:
    runtime = sqlite_kit_runtime
    await shop_with_crm(runtime)
    text = SHOP_YAML.replace("Accept: application/json", 'Authorization: "Bearer {{secret:nobody.token}}"')
    text = text.replace(
        "      - type: handoff\n",
        LOOKUP_TOOL.replace("crm.api_key", "crm.apikey") + "            X-Token: \"{{secret:crm.token}}\"\n"
        "      - type: handoff\n",
    )
    text = text.replace("greeting: Hello!", "greeting: Hello!\n    fallback_message: \"{{secret:crm}} is not a reference\"")
    with pytest.raises(ApplyError) as caught:
        await apply_text(runtime, tmp_path, text)
    assert [(line, str(problem)) for line, problem in caught.value.problems] == [
        (
            line_of(text, "fallback_message"),
            "agents[0].fallback_message: '{{secret:crm}}' is not a secret reference; expected "
            "{{secret:INTEGRATION.FIELD}}, e.g. {{secret:crm.token}}",
        ),
    ]

    text = text.replace("\n    fallback_message: \"{{secret:crm}} is not a reference\"", "")
    with pytest.raises(ApplyError) as caught:
        await apply_text(runtime, tmp_path, text)
    assert [(line, str(problem)) for line, problem in caught.value.problems] == [
        (
            line_of(text, "{{secret:nobody.token}}"),
            "agents[0].tools[0].config.headers.Authorization: {{secret:nobody.token}}: no integration named 'nobody' "
            "in this workspace; connect one first (e.g. `callable integrations connect http --name nobody`), then apply",
        ),
        (
            line_of(text, "{{secret:crm.apikey}}"),
            "agents[0].tools[1].config.headers.X-Api-Key: {{secret:crm.apikey}}: 'apikey' is not a secret field of "
            "http integrations; expected one of: token, api_key, signing_secret",
        ),
        (
            line_of(text, "{{secret:crm.token}}"),
            "agents[0].tools[1].config.headers.X-Token: {{secret:crm.token}}: integration 'crm' has no token set; "
            "set it with `callable integrations connect http --name crm`",
        ),
    ]
    for model in (KnowledgeBase, Source, Agent, Channel):
        assert await count(runtime, model) == 0, model


async def test_a_new_workspace_has_no_integration_to_reference(sqlite_kit_runtime: Runtime, tmp_path: Path) -> None:
    text = SHOP_YAML.replace("Accept: application/json", 'Authorization: "Bearer {{secret:crm.api_key}}"')
    with pytest.raises(ApplyError) as caught:
        await apply_text(sqlite_kit_runtime, tmp_path, text, dry_run=True)
    assert str(caught.value) == (
        f"{tmp_path / 'shop.yaml'}:{line_of(text, '{{secret:crm.api_key}}')}: agents[0].tools[0].config.headers."
        "Authorization: {{secret:crm.api_key}}: no integration named 'crm' in this workspace; connect one first "
        "(e.g. `callable integrations connect http --name crm`), then apply"
    )
    assert await count(sqlite_kit_runtime, Workspace) == 0


def test_a_long_document_is_refused_while_it_is_read() -> None:
    for count in (3_000, 1_000_000):  # stopped by the parser's events, before a node is built
        started = time.monotonic()
        with pytest.raises(InvalidInput) as caught:
            parse_yaml("a: [" + ", ".join(["x"] * count) + "]\n", "f.yaml", max_values=1_000)
        assert str(caught.value) == "f.yaml: the document has more than 1000 values (counting what aliases repeat)"
        assert time.monotonic() - started < 2
    data, _lines = parse_yaml("a: [" + ", ".join(["x"] * 990) + "]\n", "f.yaml", max_values=1_000)
    assert len(data["a"]) == 990
    with pytest.raises(InvalidInput) as caught:
        parse_yaml("a: " + "x" * MAX_CHARS + "\n", "f.yaml")
    assert str(caught.value) == (
        f"f.yaml: the document is {MAX_CHARS + 4} characters; the limit is {MAX_CHARS} (put long texts in files and "
        "declare them as file sources)"
    )


async def test_a_hard_link_to_the_master_key_is_refused_under_any_name(sqlite_kit_runtime: Runtime, tmp_path: Path) -> None:
    data_dir = sqlite_kit_runtime.settings.data_dir.resolve()
    (data_dir / "master.key").write_text("not a real key, but it must never be read\n")
    project = tmp_path / "project"
    project.mkdir()
    os.link(data_dir / "master.key", project / "notes.md")
    text = with_file_sources("notes.md")
    (project / "shop.yaml").write_text(text)
    with pytest.raises(ApplyError) as caught:
        await apply_file(sqlite_kit_runtime, project / "shop.yaml")
    assert str(caught.value) == (
        f"{project / 'shop.yaml'}:{line_of(text, 'path: notes.md')}: knowledge_bases[0].sources[1].path: 'notes.md' is "
        "the server's master.key under another name; key files are never read as knowledge"
    )


async def test_a_link_loop_or_a_nul_byte_in_a_path_is_a_problem_not_a_crash(sqlite_kit_runtime: Runtime, tmp_path: Path) -> None:
    (tmp_path / "loop.md").symlink_to(tmp_path / "loop.md")
    text = with_file_sources("loop.md", '"bad\\0name.md"')
    with pytest.raises(ApplyError) as caught:
        await apply_text(sqlite_kit_runtime, tmp_path, text)
    found = [(line, str(problem)) for line, problem in caught.value.problems]
    assert [line for line, _ in found] == [line_of(text, "path: loop.md"), line_of(text, "bad\\0name")]
    assert found[0][1].startswith("knowledge_bases[0].sources[1].path: cannot read 'loop.md': ")
    assert found[1][1].startswith("knowledge_bases[0].sources[2].path: cannot read 'bad\\x00name.md': ")


async def test_channel_notices_are_applied_and_checked(sqlite_kit_runtime: Runtime, tmp_path: Path) -> None:
    notices = SHOP_YAML.replace(
        "    slug: shop-chat\n",
        "    slug: shop-chat\n    takeover_notice: \"Hi, {name} here from The Shop.\"\n    return_notice: \"\"\n",
    )
    await apply_text(sqlite_kit_runtime, tmp_path, notices)
    async with sqlite_kit_runtime.db.sessions() as session:
        channel = await session.scalar(select(Channel).where(Channel.name == "web"))
    assert channel is not None
    assert (channel.takeover_notice, channel.return_notice) == ("Hi, {name} here from The Shop.", "")  # "": no notice
    await apply_text(sqlite_kit_runtime, tmp_path, SHOP_YAML)  # declarative: unset goes back to the defaults
    async with sqlite_kit_runtime.db.sessions() as session:
        channel = await session.scalar(select(Channel).where(Channel.name == "web"))
    assert channel is not None and (channel.takeover_notice, channel.return_notice) == (None, None)

    bad = SHOP_YAML.replace(
        "    slug: shop-chat\n",
        "    slug: shop-chat\n    takeover_notice: \"Hi {customer}, {name} here\"\n    return_notice: \"" + "x" * 501 + "\"\n",
    )
    with pytest.raises(ApplyError) as error:
        await apply_text(sqlite_kit_runtime, tmp_path, bad)
    message = str(error.value)
    assert "channels[0].takeover_notice" in message and "unknown placeholder {customer}" in message
    assert "channels[0].return_notice" in message and "at most 500 characters, got 501" in message
