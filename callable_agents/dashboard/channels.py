"""``/dashboard/channels``: where customers reach the agents, one card per channel type.

Nothing here knows a channel type by name. A type that needs a provider account
(``ChannelType.integration_provider``) shows "connect it first", with a link to the
Integrations page, until the workspace has one. Its set-up form is generated from the
type's ``config_schema`` (nested settings, such as a widget's appearance, get a fieldset of
their own); a type with a ``setup`` (:class:`~callable_agents.core.contracts.channels.ChannelSetup`)
also offers the account's senders to pick from, "Configure <provider> for me" (the provider's
webhooks pointed at the channel, or the URLs to paste with the reason) and a test message.
Every channel's public addresses (webhook URLs, a script tag, a share link) have copy buttons.

Channels are created and changed with
:func:`~callable_agents.core.store.channels.create_or_update_channel`, the function of the
CLI's ``apply`` and the API: a voice agent, a bad config field or a taken slug come back
beside the field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from callable_agents.core.contracts.channels import (
    ChannelSetupError,
    ChannelType,
    ConfigureResult,
    SenderList,
    TestMessageResult,
)
from callable_agents.core.contracts.integrations import StoredIntegration
from callable_agents.core.errors import CallableError, InvalidInput, NotFound
from callable_agents.core.models import Channel, Workspace
from callable_agents.core.runtime import Runtime, runtime_of
from callable_agents.core.store.agents import list_agents
from callable_agents.core.store.channel_setup import channel_setup_target
from callable_agents.core.store.channels import TEST_CHANNEL_KIND, create_or_update_channel, get_channel, list_channels
from callable_agents.core.store.integrations import list_integrations, stored_integration
from callable_agents.core.store.public_channels import channel_record
from callable_agents.core.store.users import SignedIn
from callable_agents.dashboard.forms import Form
from callable_agents.dashboard.guard import page
from callable_agents.dashboard.rendering import is_htmx, render
from callable_agents.dashboard.schema_forms import FieldSpec, data_from_form, fields_of, form_values

CONFIG_PREFIX = "config."
SENDER_CHOICE = "sender_choice"
DEFAULT_TEST_TEXT = "This is a test message from your agent's new channel."


# --- the config form, generated from the channel type's schema -----------------------------------


@dataclass(frozen=True)
class ConfigSection:
    """The controls of one nested settings model (e.g. a widget's appearance), or of the top level."""

    key: str  # "" for the top level, else the config field holding the nested model
    label: str
    help: str
    fields: list[FieldSpec]
    optional: bool = True  # a nested model that may be left out entirely (its default is None)


@dataclass(frozen=True)
class ConfigForm:
    sections: list[ConfigSection]
    picked: frozenset[str] = field(default_factory=frozenset)  # fields the sender picker fills
    # Top-level fields shown folded under "Limits and advanced settings": numbers, JSON, and
    # fields the schema marks ``json_schema_extra={"advanced": True}``.
    advanced: frozenset[str] = field(default_factory=frozenset)

    @property
    def names(self) -> list[str]:
        return [spec.name for section in self.sections for spec in section.fields]


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    """The model of a field holding one nested settings model (optional or not), else None."""
    import types
    import typing

    candidates = [annotation]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        candidates = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
    if len(candidates) == 1 and isinstance(candidates[0], type) and issubclass(candidates[0], BaseModel):
        return candidates[0]
    return None


def config_form(schema: type[BaseModel], picked: frozenset[str] = frozenset()) -> ConfigForm:
    """The schema's fields as sections: the top level, then one per nested model."""
    top = [spec for spec in fields_of(schema, prefix=CONFIG_PREFIX) if _nested_model(schema.model_fields[spec.key].annotation) is None]
    sections = [ConfigSection("", "Settings", "", top)]
    advanced = frozenset(
        spec.key for spec in top
        if spec.kind in ("number", "json") or _marked_advanced(schema.model_fields[spec.key].json_schema_extra)
    )
    for key, info in schema.model_fields.items():
        nested = _nested_model(info.annotation)
        if nested is None:
            continue
        sections.append(ConfigSection(
            key,
            info.title or key.replace("_", " ").capitalize(),
            info.description or (nested.__doc__ or "").strip().split("\n")[0],
            fields_of(nested, prefix=f"{CONFIG_PREFIX}{key}."),
            optional=not info.is_required() and info.default is None,
        ))
    return ConfigForm(sections, picked, advanced)


def _marked_advanced(extra: Any) -> bool:
    return isinstance(extra, dict) and extra.get("advanced") is True


def config_from_form(form_spec: ConfigForm, form: Form) -> dict[str, Any]:
    """The submitted controls as the config's data; an optional nested section left empty is
    left out (its defaults apply)."""
    config: dict[str, Any] = {}
    for section in form_spec.sections:
        if not section.key:
            config.update(data_from_form(section.fields, form))
            continue
        touched = any(form.get(spec.name).strip() for spec in section.fields if spec.kind != "checkbox")
        if touched or not section.optional:
            config[section.key] = data_from_form(section.fields, form)
    return config


def config_values(form_spec: ConfigForm, config: dict[str, Any]) -> dict[str, str]:
    """A stored config as the controls show it."""
    shown: dict[str, str] = {}
    for section in form_spec.sections:
        data = config.get(section.key) if section.key else config
        if isinstance(data, dict):
            shown.update(form_values(section.fields, data))
    return shown


# --- what the pages show ------------------------------------------------------------------------------


def _types(runtime: Runtime) -> list[ChannelType]:
    """The channel types a business sets up (not the Test panel's own)."""
    return sorted((t for t in runtime.plugins.channels.types.values() if t.name != TEST_CHANNEL_KIND), key=lambda t: t.name)


def _type(runtime: Runtime, kind: str) -> ChannelType:
    found = runtime.plugins.channels.types.get(kind)
    if found is None:
        raise NotFound(f"channel type {kind[:40]!r} is not loaded; loaded: {', '.join(runtime.plugins.channels.types)}")
    return found


async def _workspace_things(runtime: Runtime, workspace_id: str) -> dict[str, Any]:
    async with runtime.db.sessions() as session:
        channels = await list_channels(session, workspace_id)
        agents = await list_agents(session, workspace_id)
        integrations = await list_integrations(session, workspace_id)
    return {"channels": channels, "agents": agents, "integrations": integrations}


def _addresses(runtime: Runtime, channel: Channel) -> dict[str, str]:
    channel_type = runtime.plugins.channels.types.get(channel.kind)
    if channel_type is None or channel_type.public_addresses is None:
        return {}
    return dict(channel_type.public_addresses(runtime.settings, channel_record(channel)))


@page
async def index(request: Request, viewer: SignedIn) -> Response:
    runtime = runtime_of(request)
    things = await _workspace_things(runtime, viewer.workspace_id)
    agent_names = {agent.id: agent.name for agent in things["agents"]}
    providers_connected = {row.provider for row in things["integrations"]}
    providers = runtime.plugins.providers.types
    cards = [
        {
            "type": channel_type,
            "needs": channel_type.integration_provider
            if channel_type.integration_provider and channel_type.integration_provider not in providers_connected
            else "",
            "needs_name": providers[channel_type.integration_provider].display_name
            if channel_type.integration_provider in providers else (channel_type.integration_provider or ""),
            "channels": [c for c in things["channels"] if c.kind == channel_type.name],
        }
        for channel_type in _types(runtime)
    ]
    return render(request, "channels/index.html", {
        "section": "channels", "title": "Channels", "cards": cards, "agent_names": agent_names,
        "has_agents": bool(things["agents"]),
    })


def _preview(runtime: Runtime, channel_type: ChannelType, config: dict[str, Any]) -> str | None:
    """The type's preview of ``config``, or None when it has none or the config is not valid yet."""
    if channel_type.preview is None:
        return None
    try:
        accepted = channel_type.config_schema.model_validate(config)
    except ValidationError:
        return None
    return channel_type.preview(runtime.settings, accepted)


@page
async def preview(request: Request, viewer: SignedIn) -> Response:
    """The live preview of the form as it is now (HTMX, as the owner types)."""
    runtime = runtime_of(request)
    channel_type = _type(runtime, request.path_params["kind"])
    form = await Form.read(request)
    config = config_from_form(config_form(channel_type.config_schema), form)
    html = _preview(runtime, channel_type, config) if form.ok else None
    return render(request, "channels/_preview.html", {"preview_html": html})


# --- new and edit ------------------------------------------------------------------------------------


async def _senders(runtime: Runtime, channel_type: ChannelType, integration: StoredIntegration | None) -> tuple[SenderList | None, str]:
    """The account's senders, or why they could not be listed."""
    if channel_type.setup is None or integration is None:
        return None, ""
    try:
        return await channel_type.setup.list_senders(runtime, integration), ""
    except CallableError as exc:
        return None, str(exc)


async def _snapshot(runtime: Runtime, workspace_id: str, name_or_id: str | None) -> StoredIntegration | None:
    if not name_or_id:
        return None
    async with runtime.db.sessions() as session:
        from callable_agents.core.store.integrations import find_integration

        row = await find_integration(session, workspace_id, name_or_id)
        workspace = await session.get(Workspace, workspace_id) if row is not None else None
    return stored_integration(row, workspace) if row is not None and workspace is not None else None


async def _editor_context(
    request: Request, viewer: SignedIn, channel_type: ChannelType, *, channel: Channel | None, form: Form | None
) -> dict[str, Any]:
    runtime = runtime_of(request)
    things = await _workspace_things(runtime, viewer.workspace_id)
    provider = channel_type.integration_provider
    integrations = [row for row in things["integrations"] if provider is None or row.provider == provider]
    chosen = (form.get("integration") if form else "") or request.query_params.get("integration", "")
    if channel is not None and not chosen:
        chosen = next((row.name for row in integrations if row.id == channel.integration_id), "")
    if not chosen and integrations and provider:
        chosen = integrations[0].name
    integration = await _snapshot(runtime, viewer.workspace_id, chosen) if provider else None
    senders, senders_error = await _senders(runtime, channel_type, integration)
    picked = frozenset(option.config_field for option in senders.senders) if senders else frozenset()
    spec = config_form(channel_type.config_schema, picked)
    if form is None:
        values: dict[str, str] = {"enabled": "on"}
        if channel is not None:
            values.update(config_values(spec, dict(channel.config or {})))
            agent = next((a.name for a in things["agents"] if a.id == channel.agent_id), "")
            values.update(name=channel.name, agent=agent, slug=channel.slug or "", enabled="on" if channel.enabled else "")
            current = [f"{option.config_field}={option.value}" for option in (senders.senders if senders else ())
                       if (channel.config or {}).get(option.config_field) == option.value]
            values[SENDER_CHOICE] = current[0] if current else ""
        else:
            values["name"] = channel_type.name
            chat_agents = [a.name for a in things["agents"] if a.kind == "chat"]
            values["agent"] = chat_agents[0] if chat_agents else ""
        values["integration"] = chosen
        form = Form(values=values)
    shown = form

    def unfold(specs: list[FieldSpec], filled: bool = True) -> bool:
        """Whether a folded part of the form starts open: it has an error, or (``filled``) a value."""
        names = [spec.name for spec in specs]
        return any(name in shown.errors for name in names) or (
            filled and any(shown.get(name).strip() for name in names)
        )

    providers = runtime.plugins.providers.types
    return {
        "section": "channels",
        "title": f"{channel.name if channel else 'New'} · {channel_type.display_name} channel",
        "unfold": unfold,
        "provider_name": providers[provider].display_name if provider in providers else (provider or ""),
        "channel_type": channel_type,
        "channel": channel,
        "form": form,
        "agents": things["agents"],
        "integrations": integrations,
        "senders": senders,
        "senders_error": senders_error,
        "config": spec,
        "sender_choice": SENDER_CHOICE,
        "addresses": _addresses(runtime, channel) if channel is not None else {},
        "configure_result": None,
        "configure_error": "",
        "test_result": None,
        "test_error": "",
        "test_form": Form(values={"text": DEFAULT_TEST_TEXT}),
        "preview_html": _preview(runtime, channel_type, config_from_form(config_form(channel_type.config_schema), Form(values=dict(form.values)))),
    }


@page
async def new(request: Request, viewer: SignedIn) -> Response:
    channel_type = _type(runtime_of(request), request.path_params["kind"])
    context = await _editor_context(request, viewer, channel_type, channel=None, form=None)
    if channel_type.integration_provider and not context["integrations"]:
        return RedirectResponse("/dashboard/channels", status_code=303)
    return render(request, "channels/edit.html", context)


async def _load(request: Request, viewer: SignedIn) -> Channel:
    async with runtime_of(request).db.sessions() as session:
        return await get_channel(session, viewer.workspace_id, request.path_params["channel_id"])


@page
async def show(request: Request, viewer: SignedIn) -> Response:
    channel = await _load(request, viewer)
    channel_type = _type(runtime_of(request), channel.kind)
    return render(request, "channels/edit.html", await _editor_context(request, viewer, channel_type, channel=channel, form=None))


async def _save(request: Request, viewer: SignedIn, channel_type: ChannelType, existing: Channel | None) -> Response:
    runtime = runtime_of(request)
    form = await Form.read(request)
    name = existing.name if existing is not None else form.text("name", required=True, label="name", max_length=100)
    integration = form.get("integration").strip() or None if channel_type.integration_provider else None
    senders_listed = [choice for choice in form.lists.get("senders_listed", []) if choice]
    picked = frozenset(choice.partition("=")[0] for choice in senders_listed)
    spec = config_form(channel_type.config_schema, picked)
    config = config_from_form(spec, form)
    choice = form.get(SENDER_CHOICE)
    if choice:
        config_field, _, value = choice.partition("=")
        if choice not in senders_listed or config_field not in channel_type.config_schema.model_fields:
            form.error(SENDER_CHOICE, "sender: pick one of the listed senders, or enter one by hand")
        else:
            for other in picked:
                config.pop(other, None)
            config[config_field] = value
    slug = form.get("slug").strip() or None if channel_type.public_slug else (existing.slug if existing else None)
    if integration is not None:
        picked_integration = await _snapshot(runtime, viewer.workspace_id, integration)
        if picked_integration is not None and picked_integration.provider != channel_type.integration_provider:
            form.error(
                "integration",
                f"integration: {integration!r} is a {picked_integration.provider} integration; "
                f"a {channel_type.display_name} channel needs a {channel_type.integration_provider} one",
            )
    if form.ok:
        try:
            async with runtime.db.session() as session:
                channel, _ = await create_or_update_channel(
                    session, runtime, viewer.workspace_id,
                    name=name, kind=channel_type.name, agent=form.get("agent").strip(), integration=integration,
                    slug=slug, config=config, enabled=form.checked("enabled"),
                )
                channel_id = channel.id
        except CallableError as exc:
            form.fail(exc)
    if not form.ok:
        _sender_errors_on_the_picker(form, picked)
        context = await _editor_context(request, viewer, channel_type, channel=existing, form=form)
        return render(request, "channels/edit.html", context, status_code=422)
    return RedirectResponse(f"/dashboard/channels/{channel_id}?saved=1", status_code=303)


def _sender_errors_on_the_picker(form: Form, picked: frozenset[str]) -> None:
    """A refused sender field the picker filled shows beside the picker."""
    for config_field in picked:
        message = form.errors.pop(CONFIG_PREFIX + config_field, None)
        if message:
            form.error(SENDER_CHOICE, message)


@page(owner_only=True)
async def create(request: Request, viewer: SignedIn) -> Response:
    channel_type = _type(runtime_of(request), request.path_params["kind"])
    form = await Form.read(request)
    async with runtime_of(request).db.sessions() as session:
        from callable_agents.core.store.channels import find_channel

        taken = await find_channel(session, viewer.workspace_id, form.get("name").strip()) if form.get("name").strip() else None
    if taken is not None:
        form.error("name", f"name: a channel named {taken.name!r} exists; pick another name")
        _sender_errors_on_the_picker(form, frozenset())
        context = await _editor_context(request, viewer, channel_type, channel=None, form=form)
        return render(request, "channels/edit.html", context, status_code=422)
    return await _save(request, viewer, channel_type, None)


@page(owner_only=True)
async def update(request: Request, viewer: SignedIn) -> Response:
    channel = await _load(request, viewer)
    return await _save(request, viewer, _type(runtime_of(request), channel.kind), channel)


# --- set-up at the provider ------------------------------------------------------------------------------


async def _setup_parts(request: Request, viewer: SignedIn) -> tuple[Channel, ChannelType, StoredIntegration]:
    target = await channel_setup_target(runtime_of(request), viewer.workspace_id, request.path_params["channel_id"])
    return await _load(request, viewer), target.channel_type, target.integration


async def _setup_answer(
    request: Request, viewer: SignedIn, channel: Channel, channel_type: ChannelType, fragment: str, **result: Any
) -> Response:
    """The result as an HTMX fragment, or the whole channel page with it (no script)."""
    if is_htmx(request):
        return render(request, fragment, {"channel_type": channel_type, "channel": channel, **result})
    context = await _editor_context(request, viewer, channel_type, channel=channel, form=None)
    context.update(result)
    return render(request, "channels/edit.html", context)


@page(owner_only=True)
async def configure(request: Request, viewer: SignedIn) -> Response:
    """Point the channel's sender at its URLs at the provider (or say why not, with the URLs)."""
    channel, channel_type, integration = await _setup_parts(request, viewer)
    assert channel_type.setup is not None
    result: ConfigureResult | None = None
    error = ""
    try:
        result = await channel_type.setup.configure(runtime_of(request), integration, channel_record(channel))
    except CallableError as exc:
        error = str(exc)
    return await _setup_answer(
        request, viewer, channel, channel_type, "channels/_configure.html", configure_result=result, configure_error=error
    )


@page(owner_only=True)
async def send_test(request: Request, viewer: SignedIn) -> Response:
    """Send a test message from the channel's sender to a number."""
    channel, channel_type, integration = await _setup_parts(request, viewer)
    assert channel_type.setup is not None
    form = await Form.read(request)
    result: TestMessageResult | None = None
    error = ""
    try:
        result = await channel_type.setup.send_test(
            runtime_of(request), integration, channel_record(channel), form.get("to"), form.get("text") or DEFAULT_TEST_TEXT
        )
    except ChannelSetupError as exc:
        error = str(exc)
    except CallableError as exc:
        form.fail(exc)
        error = str(exc)
    return await _setup_answer(
        request, viewer, channel, channel_type, "channels/_test.html", test_result=result, test_error=error, test_form=form
    )


def routes() -> list[BaseRoute]:
    return [
        Route("/channels", index, methods=["GET"]),
        Route("/channels/new/{kind}", new, methods=["GET"]),
        Route("/channels/new/{kind}", create, methods=["POST"]),
        Route("/channels/preview/{kind}", preview, methods=["POST"]),
        Route("/channels/{channel_id}", show, methods=["GET"]),
        Route("/channels/{channel_id}", update, methods=["POST"]),
        Route("/channels/{channel_id}/configure", configure, methods=["POST"]),
        Route("/channels/{channel_id}/test-message", send_test, methods=["POST"]),
    ]

