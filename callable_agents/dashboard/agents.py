"""``/dashboard/agents``: the Agents builder.

The list shows each agent of the workspace (kind, model or offline mode, tools, knowledge
bases, the channels using it) and creates a Chat or a Voice agent. An agent's page edits its
system prompt, business info, model, greeting and fallback, its knowledge bases and its
tools (each tool's settings form generated from its type's config schema, see
:mod:`.agent_form`), and deletes it (refused while a channel uses it). Everything is checked
and stored by the service functions the admin API and ``callable apply`` use
(``validate_agent_spec``, ``create_or_update_agent``, ``delete_agent``); secret references in
tool settings are checked as ``apply`` checks them. Beside the builder, the Test panel
(:mod:`.agent_test`) chats with the agent through the real pipeline.
"""

from __future__ import annotations

import secrets
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from callable_agents.apply.values import secret_problems, secret_references
from callable_agents.apply.write import secret_reference_problems
from callable_agents.core.errors import CallableError, NotFound
from callable_agents.core.knowledge.store import list_knowledge_bases
from callable_agents.core.models import Agent, Channel, Integration
from callable_agents.core.runtime import Runtime, runtime_of
from callable_agents.core.store.agent_spec import AgentSpecInput, Problem, SpecError, agent_reference_problems, parse_agent_spec, validate_agent_spec
from callable_agents.core.store.agents import create_or_update_agent, delete_agent, describe_agent, list_agents
from callable_agents.core.store.test_channel import TEST_CHANNEL_KIND, delete_agent_test_channel
from callable_agents.core.store.users import SignedIn
from callable_agents.dashboard import agent_test
from callable_agents.dashboard.agent_lookup import agent_in_workspace
from callable_agents.dashboard.agent_form import (
    BUSINESS_FIELDS,
    SERVER_KEY,
    field_names,
    form_of_agent,
    located,
    next_tool_index,
    spec_from_form,
    tool_form,
    tool_forms,
)
from callable_agents.dashboard.forms import Form
from callable_agents.dashboard.guard import page
from callable_agents.dashboard.rendering import render

KINDS = (("chat", "Chat agent (messaging, website widget)"), ("voice", "Voice agent (phone calls)"))


async def _channels_by_agent(session: AsyncSession, workspace_id: str) -> dict[str, list[str]]:
    rows = await session.execute(
        select(Channel.agent_id, Channel.name)
        .where(Channel.workspace_id == workspace_id, Channel.kind != TEST_CHANNEL_KIND)
        .order_by(Channel.name)
    )
    found: dict[str, list[str]] = {}
    for agent_id, name in rows.all():
        found.setdefault(agent_id, []).append(name)
    return found


async def _model_integrations(session: AsyncSession, workspace_id: str) -> list[str]:
    rows = await session.scalars(
        select(Integration.name).where(Integration.workspace_id == workspace_id, Integration.provider == "openai").order_by(Integration.name)
    )
    return list(rows.all())


def model_label(settings: dict[str, Any]) -> str:
    """How the list names an agent's model: the model (and where it runs), or offline mode."""
    model = settings.get("model")
    if not model:
        return "offline mode"
    return f"{model} ({settings.get('integration') or 'server key'})"


# --------------------------------------------------------------------------- list and create


async def _list_context(request: Request, viewer: SignedIn) -> dict[str, Any]:
    async with runtime_of(request).db.sessions() as session:
        agents = await list_agents(session, viewer.workspace_id)
        kbs = {kb.id: kb.name for kb in await list_knowledge_bases(session, viewer.workspace_id)}
        channels = await _channels_by_agent(session, viewer.workspace_id)
    rows = [
        {
            "id": agent.id,
            "name": agent.name,
            "kind": agent.kind,
            "model": model_label(agent.model_settings or {}),
            "offline": not (agent.model_settings or {}).get("model"),
            "tools": [f"{tool['name']} ({tool['type']})" for tool in agent.tools or []],
            "knowledge_bases": [kbs[kb_id] for kb_id in agent.knowledge_base_ids or [] if kb_id in kbs],
            "channels": channels.get(agent.id, []),
        }
        for agent in agents
    ]
    return {"section": "agents", "agents": rows, "kinds": KINDS}


@page
async def index(request: Request, viewer: SignedIn) -> Response:
    context = await _list_context(request, viewer)
    context["create_form"] = Form(values={"kind": "chat"})
    return render(request, "agents/index.html", context)


@page
async def create(request: Request, viewer: SignedIn) -> Response:
    form = await Form.read(request)
    runtime = runtime_of(request)
    name = form.text("name", required=True, label="name", max_length=100)
    kind = form.get("kind", "chat")
    agent_id = ""
    if form.ok:
        try:
            async with runtime.db.session() as session:
                if await session.scalar(select(Agent.id).where(Agent.workspace_id == viewer.workspace_id, Agent.name == name)):
                    form.error("name", f"name: an agent named {name!r} exists already; pick another name")
                else:
                    agent, _ = await create_or_update_agent(session, runtime, viewer.workspace_id, {"name": name, "kind": kind})
                    agent_id = agent.id
        except CallableError as exc:
            form.fail(exc)
    if agent_id:
        return RedirectResponse(f"/dashboard/agents/{agent_id}", status_code=303)
    context = await _list_context(request, viewer)
    context["create_form"] = form
    return render(request, "agents/index.html", context, status_code=422)


# --------------------------------------------------------------------------- the builder


async def _builder_context(runtime: Runtime, viewer: SignedIn, agent: Agent, session: AsyncSession) -> dict[str, Any]:
    kbs = await list_knowledge_bases(session, viewer.workspace_id)
    channels = (await _channels_by_agent(session, viewer.workspace_id)).get(agent.id, [])
    integrations = await _model_integrations(session, viewer.workspace_id)
    integration_choices = [("", "None: offline mode (answers quoted from the knowledge base, no model)")]
    integration_choices.append((SERVER_KEY, "The server's default key (OPENAI_API_KEY)"))
    integration_choices.extend((name, f"{name} (OpenAI-compatible integration)") for name in integrations)
    return {
        "section": "agents",
        "agent": {"id": agent.id, "name": agent.name, "kind": agent.kind},
        "channels": channels,
        "knowledge_bases": [kb.name for kb in kbs],
        "integration_choices": integration_choices,
        "business_fields": BUSINESS_FIELDS,
        "tool_types": sorted(runtime.plugins.tools, key=lambda t: t.name),
        "preview_kinds": agent_test.preview_kinds(runtime),
        "default_preview": agent_test.default_preview(runtime),
        "test_session": secrets.token_urlsafe(9),
    }


def _render_builder(request: Request, context: dict[str, Any], form: Form, status_code: int = 200) -> Response:
    plugins = runtime_of(request).plugins
    context.update(form=form, tools=tool_forms(form, plugins), next_tool=next_tool_index(form))
    return render(request, "agents/edit.html", context, status_code=status_code)


@page
async def edit(request: Request, viewer: SignedIn) -> Response:
    runtime = runtime_of(request)
    async with runtime.db.sessions() as session:
        agent = await agent_in_workspace(session, viewer.workspace_id, request.path_params["agent_id"])
        kb_names = {kb.id: kb.name for kb in await list_knowledge_bases(session, viewer.workspace_id)}
        form = form_of_agent(describe_agent(agent), kb_names, runtime.plugins)
        context = await _builder_context(runtime, viewer, agent, session)
    context["saved"] = request.query_params.get("saved") == "1"
    return _render_builder(request, context, form)


async def _reference_problems(session: AsyncSession, runtime: Runtime, workspace_id: str, spec: AgentSpecInput) -> list[Problem]:
    """What the workspace lacks (model integration, knowledge bases) and the secrets in tool
    settings: literal ones refused, ``{{secret:...}}`` references checked as ``apply`` checks
    them. Reported with the shape's problems, all at once, before anything is written."""
    rows = await session.execute(
        select(Integration.name, Integration.provider, Integration.secrets).where(Integration.workspace_id == workspace_id)
    )
    integrations: dict[str, str] = {}
    secrets_set: dict[str, set[str]] = {}
    for name, provider, sealed in rows.all():  # the sealed secrets' names only are read
        integrations[name] = provider
        secrets_set[name] = set(sealed or {})
    kb_names = [kb.name for kb in await list_knowledge_bases(session, workspace_id)]
    problems = agent_reference_problems(spec, integrations=integrations, knowledge_bases=kb_names)
    data = spec.model_dump(mode="json")
    problems.extend(secret_problems(data))
    references, malformed = secret_references(data)
    problems.extend(malformed)
    problems.extend(secret_reference_problems(runtime, references, integrations, secrets_set))
    return problems


@page
async def save(request: Request, viewer: SignedIn) -> Response:
    runtime = runtime_of(request)
    form = await Form.read(request)
    async with runtime.db.session() as session:
        agent = await agent_in_workspace(session, viewer.workspace_id, request.path_params["agent_id"])
        # The name and kind are the agent's: the form cannot rename it or change its kind.
        form.values.update(name=agent.name, kind=agent.kind)
        spec, positions = spec_from_form(form, runtime.plugins, agent.model_settings or {})
        problems: list[Problem] = []
        validated: AgentSpecInput | None = None
        try:
            validated = validate_agent_spec(spec, runtime)
        except SpecError as exc:
            problems.extend(exc.problems)
        try:  # what the workspace lacks is reported with the shape's problems, all at once
            problems.extend(await _reference_problems(session, runtime, viewer.workspace_id, validated or parse_agent_spec(spec)))
        except SpecError:
            pass  # the shape is wrong: its problems are listed already
        if problems:
            form.fail(located(problems, positions, field_names(form, runtime.plugins)))
        elif form.ok and validated is not None:
            try:
                await create_or_update_agent(session, runtime, viewer.workspace_id, validated)
            except CallableError as exc:
                form.fail(exc)
        if form.ok:
            return RedirectResponse(f"/dashboard/agents/{agent.id}?saved=1", status_code=303)
        context = await _builder_context(runtime, viewer, agent, session)
        # nothing is stored: the session's transaction ends without a write
    return _render_builder(request, context, form, status_code=422)


@page
async def new_tool(request: Request, viewer: SignedIn) -> Response:
    """A new tool's fieldset (HTMX), its settings form generated from the type's schema."""
    runtime = runtime_of(request)
    async with runtime.db.sessions() as session:
        agent = await agent_in_workspace(session, viewer.workspace_id, request.path_params["agent_id"])
    type_name = request.query_params.get("new_tool_type", "")
    if type_name not in runtime.plugins.tools:
        raise NotFound(f"new_tool_type: no tool type named {type_name[:100]!r} is loaded")
    try:
        index = int(request.query_params.get("new_tool_index", "0"))
    except ValueError:
        index = 0
    index = max(0, min(index, 999))
    tool = tool_form(runtime.plugins, type_name, index)
    taken = {t["name"] for t in agent.tools or []}
    name = type_name.replace("-", "_")
    suffix = 2
    while name in taken:
        name = f"{type_name}_{suffix}"
        suffix += 1
    form = Form(values={f"{tool.prefix}type": type_name, f"{tool.prefix}name": name})
    return render(request, "agents/_tool.html", {"tool": tool, "form": form, "fresh": True})


@page
async def remove(request: Request, viewer: SignedIn) -> Response:
    runtime = runtime_of(request)
    async with runtime.db.session() as session:
        agent = await agent_in_workspace(session, viewer.workspace_id, request.path_params["agent_id"])
        # Its own test conversations go with it; a real channel refuses the deletion (named).
        await delete_agent_test_channel(session, agent)
        await delete_agent(session, viewer.workspace_id, agent.id)
    return RedirectResponse("/dashboard/agents", status_code=303)


def routes() -> list[BaseRoute]:
    return [
        Route("/agents", index, methods=["GET"]),
        Route("/agents", create, methods=["POST"]),
        Route("/agents/{agent_id}", edit, methods=["GET"]),
        Route("/agents/{agent_id}", save, methods=["POST"]),
        Route("/agents/{agent_id}/tool-form", new_tool, methods=["GET"]),
        Route("/agents/{agent_id}/delete", remove, methods=["POST"]),
        *agent_test.routes(),
    ]
