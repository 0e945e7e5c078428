"""Channels: validation and data access on the ``Channel`` table.

A channel is one place customers reach an agent: a messaging-app sender, a chat on a
website, a public page, or any kind a plugin adds. ``kind`` must be a registered channel
type, whose ``config_schema`` checks ``config``; ``replies``, the reply policy every channel
has whatever its kind, is core's (:mod:`.reply_policy`), as are ``takeover_notice`` and
``return_notice`` (what the customer is told when a person takes over or gives the
conversation back; unset: the defaults, "": none); only **chat** agents may be attached (a
voice agent cannot answer text).

Every function takes the workspace and filters by it, except
:func:`get_channel_by_id_unscoped` and :func:`get_channel_by_slug_unscoped`: a public
channel endpoint (a provider's webhook, a web chat's API, a public page) is reached by a
stranger whose only credential is the channel's unguessable id or its public slug in the
URL, so that id or slug *is* the entry point that determines the workspace. Nothing else
may use them; admin code always has a workspace and uses the scoped functions.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from callable_agents.core.store.agent_spec import NAME_PATTERN, Problem, SpecError, problems_from_validation_error
from callable_agents.core.store.agents import find_agent
from callable_agents.core.store.reply_policy import ReplyPolicy, describe_policy, reply_policy_of
from callable_agents.core.db import find_named, scoped
from callable_agents.core.errors import Conflict, NotFound
from callable_agents.core.models import Agent, Channel, Integration

if TYPE_CHECKING:
    from callable_agents.core.plugins import Plugins
    from callable_agents.core.runtime import Runtime

__all__ = [
    "ChannelSpecInput",
    "channel_reference_problems",
    "channel_spec_of",
    "channel_views",
    "create_channel",
    "create_or_update_channel",
    "delete_channel",
    "describe_channel",
    "find_channel",
    "get_channel",
    "get_channel_by_id_unscoped",
    "get_channel_by_slug_unscoped",
    "list_channels",
    "public_addresses",
    "update_channel",
    "validate_channel_spec",
]

SLUG_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


def _check_name(value: str) -> str:
    if not NAME_PATTERN.match(value):
        raise ValueError("expected 1-100 letters, digits, '-', '_' or '.', starting with a letter or digit")
    return value


def _check_slug(value: str) -> str:
    if not SLUG_PATTERN.match(value):
        raise ValueError("expected lowercase letters, digits and dashes (1-63 characters), e.g. 'bella'")
    return value


Name = Annotated[str, AfterValidator(_check_name)]

MAX_NOTICE = 500  # characters of a takeover or return notice
NOTICE_PLACEHOLDERS = ("{name}",)  # the person's name ("our team" when there is none)
_PLACEHOLDER = re.compile(r"\{[^{}]*\}")


def _check_notice(value: str) -> str:
    value = value.strip()
    if len(value) > MAX_NOTICE:
        raise ValueError(f"expected at most {MAX_NOTICE} characters, got {len(value)}")
    unknown = [found for found in _PLACEHOLDER.findall(value) if found not in NOTICE_PLACEHOLDERS]
    if unknown:
        raise ValueError(
            f"unknown placeholder {unknown[0]}; the only one is {{name}} (the person's name), "
            "or leave the text empty to send no notice"
        )
    return value


NoticeText = Annotated[str, AfterValidator(_check_notice)]


class ChannelSpecInput(BaseModel):
    """A channel as declared by a person: the input of :func:`create_or_update_channel`."""

    model_config = ConfigDict(extra="forbid")

    name: Name
    kind: Annotated[str, Field(min_length=1, max_length=40)]
    agent: Name = Field(description="The chat agent that answers on this channel, by name.")
    integration: Name | None = Field(default=None, description="A provider integration, by name.")
    slug: Annotated[str, AfterValidator(_check_slug)] | None = Field(
        default=None, description="The public URL name (public pages): unique across the server."
    )
    config: dict[str, Any] = Field(default_factory=dict)
    replies: ReplyPolicy | None = Field(
        default=None, description="How several customer messages in a row are answered; unset: interrupt."
    )
    takeover_notice: NoticeText | None = Field(
        default=None,
        description="Told to the customer when a person takes over; {name} is the person's name. Unset: the default; '': none.",
    )
    return_notice: NoticeText | None = Field(
        default=None, description="Told to the customer when the agent takes the conversation back. Unset: the default; '': none."
    )
    enabled: bool = True


def _plugins_of(runtime_or_plugins: Runtime | Plugins) -> Plugins:
    from callable_agents.core.runtime import Runtime  # the module-level name is for type checking only

    return runtime_or_plugins.plugins if isinstance(runtime_or_plugins, Runtime) else runtime_or_plugins


def validate_channel_spec(
    data: Mapping[str, Any] | ChannelSpecInput, runtime_or_plugins: Runtime | Plugins
) -> ChannelSpecInput:
    """The spec with ``config`` validated and normalised by the channel type's schema.

    Raises :class:`SpecError` naming every field at fault at once (the shape, an unknown
    kind, what the type's config schema refuses).
    """
    problems: list[Problem] = []
    spec: ChannelSpecInput | None = None
    if isinstance(data, ChannelSpecInput):
        spec = data
    elif not isinstance(data, Mapping):
        raise SpecError([Problem((), f"expected an object with the channel's fields, got {type(data).__name__}")])
    else:
        try:
            spec = ChannelSpecInput.model_validate(dict(data))
        except ValidationError as exc:
            problems.extend(problems_from_validation_error(exc, ChannelSpecInput))
    kind = spec.kind if spec else data.get("kind")  # type: ignore[union-attr]
    config = spec.config if spec else data.get("config", {})  # type: ignore[union-attr]
    plugins = _plugins_of(runtime_or_plugins)
    normalised: dict[str, Any] | None = None
    if isinstance(kind, str) and kind not in plugins.channels:
        known = ", ".join(sorted(plugins.channels.types)) or "none"
        problems.append(Problem(("kind",), f"unknown channel type {kind!r}; loaded: {known}"))
    elif isinstance(kind, str) and isinstance(config, Mapping):
        schema = plugins.channels.get(kind).config_schema
        try:
            normalised = schema.model_validate(dict(config)).model_dump(mode="json")
        except ValidationError as exc:
            problems.extend(problems_from_validation_error(exc, schema, ("config",)))
    if problems or spec is None or normalised is None:
        raise SpecError(list(dict.fromkeys(problems)))
    return spec.model_copy(update={"config": normalised})


def channel_reference_problems(
    spec: ChannelSpecInput,
    *,
    agent_kinds: Mapping[str, str],
    integrations: Mapping[str, str],
) -> list[Problem]:
    """What in ``spec`` refers to things the workspace lacks, or to a voice agent.

    ``agent_kinds`` maps agent names to kinds; ``integrations`` maps integration names to providers.
    """
    problems = []
    kind = agent_kinds.get(spec.agent)
    if kind is None:
        problems.append(Problem(("agent",), f"no agent named {spec.agent!r} in this workspace"))
    elif kind != "chat":
        problems.append(
            Problem(
                ("agent",),
                f"{spec.agent!r} is a {kind} agent and cannot answer on a {spec.kind} channel; attach a chat agent",
            )
        )
    if spec.integration is not None and spec.integration not in integrations:
        problems.append(
            Problem(
                ("integration",),
                f"no integration named {spec.integration!r} in this workspace; connect one with "
                f"`callable integrations connect PROVIDER --name {spec.integration}` and reference it by name",
            )
        )
    return problems


# --------------------------------------------------------------------------- data access


async def find_channel(session: AsyncSession, workspace_id: str, name_or_id: str) -> Channel | None:
    return await find_named(session, Channel, workspace_id, name_or_id)


async def get_channel(session: AsyncSession, workspace_id: str, name_or_id: str) -> Channel:
    channel = await find_channel(session, workspace_id, name_or_id)
    if channel is None:
        raise NotFound(f"channel {name_or_id[:100]!r} not found in this workspace")
    return channel


# The dashboard Test panel's channels (:mod:`.test_channel`): the product's own, never listed
# with the business's channels, nor their conversations in the inbox.
TEST_CHANNEL_KIND = "test-panel"


async def list_channels(session: AsyncSession, workspace_id: str, *, kind: str | None = None) -> Sequence[Channel]:
    """The workspace's channels by name (``kind``: of that kind only); the Test panel's only
    when asked for by their kind."""
    query = scoped(Channel, workspace_id).order_by(Channel.name)
    if kind is not None:
        query = query.where(Channel.kind == kind)
    else:
        query = query.where(Channel.kind != TEST_CHANNEL_KIND)
    return (await session.scalars(query)).all()


async def get_channel_by_id_unscoped(session: AsyncSession, channel_id: str) -> Channel | None:
    """The channel with this id, in whatever workspace: **only for public channel endpoints**.

    A webhook or public chat request carries no workspace; the channel id in its URL (random,
    128 bits) is what identifies both. Everything the handler does next is scoped by the
    returned channel's ``workspace_id``. Returns None for an unknown id, so the handler can
    answer 404 without saying more.
    """
    return await session.get(Channel, channel_id)


async def get_channel_by_slug_unscoped(session: AsyncSession, slug: str) -> Channel | None:
    """The channel with this public slug: **only for the public page route** (``/chat/{slug}``).

    Slugs are unique across the server for that reason; see :func:`get_channel_by_id_unscoped`.
    """
    return await session.scalar(select(Channel).where(Channel.slug == slug))


async def create_or_update_channel(
    session: AsyncSession,
    runtime_or_plugins: Runtime | Plugins,
    workspace_id: str,
    *,
    name: str,
    kind: str,
    agent: str,
    integration: str | None = None,
    slug: str | None = None,
    config: Mapping[str, Any] | None = None,
    replies: Mapping[str, Any] | ReplyPolicy | None = None,
    takeover_notice: str | None = None,
    return_notice: str | None = None,
    enabled: bool = True,
) -> tuple[Channel, bool]:
    """Create the channel ``name`` or bring the stored one in line; returns (row, changed).

    Only columns that differ are written, so an unchanged channel keeps its ``updated_at``.
    Raises :class:`SpecError` naming the field at fault, or :class:`Conflict` when the slug
    is taken by another channel.
    """
    spec = validate_channel_spec(
        {
            "name": name,
            "kind": kind,
            "agent": agent,
            "integration": integration,
            "slug": slug,
            "config": dict(config or {}),
            "replies": replies.model_dump() if isinstance(replies, ReplyPolicy) else replies,
            "takeover_notice": takeover_notice,
            "return_notice": return_notice,
            "enabled": enabled,
        },
        runtime_or_plugins,
    )
    agent_row = await session.scalar(scoped(Agent, workspace_id).where(Agent.name == spec.agent))
    integration_row = None
    if spec.integration is not None:
        integration_row = await session.scalar(
            scoped(Integration, workspace_id).where(Integration.name == spec.integration)
        )
    problems = channel_reference_problems(
        spec,
        agent_kinds={agent_row.name: agent_row.kind} if agent_row else {},
        integrations={integration_row.name: integration_row.provider} if integration_row else {},
    )
    if problems:
        raise SpecError(problems)
    assert agent_row is not None
    channel = await session.scalar(scoped(Channel, workspace_id).where(Channel.name == spec.name))
    if spec.slug is not None:
        holder = await session.scalar(select(Channel.id).where(Channel.slug == spec.slug))
        if holder is not None and (channel is None or holder != channel.id):
            raise Conflict(f"slug: {spec.slug!r} is already used by another channel; pick another slug")
    desired: dict[str, Any] = {
        "kind": spec.kind,
        "agent_id": agent_row.id,
        "integration_id": integration_row.id if integration_row else None,
        "slug": spec.slug,
        "config": spec.config,
        "replies": spec.replies.model_dump(mode="json") if spec.replies is not None else None,
        "takeover_notice": spec.takeover_notice,
        "return_notice": spec.return_notice,
        "enabled": spec.enabled,
    }
    if channel is None:
        channel = Channel(workspace_id=workspace_id, name=spec.name, **desired)
        await _write(session, channel, spec)
        return channel, True
    if channel.kind != spec.kind:
        raise Conflict(
            f"kind: channel {spec.name!r} is a {channel.kind} channel; a channel cannot change kind "
            "(delete it, or use another name)"
        )
    changed = False
    for column, value in desired.items():
        if getattr(channel, column) != value:
            setattr(channel, column, value)
            changed = True
    if changed:
        await _write(session, channel, spec)
    return channel, changed


async def create_channel(
    session: AsyncSession, runtime_or_plugins: Runtime | Plugins, workspace_id: str, spec: Mapping[str, Any]
) -> Channel:
    """Create a new channel from ``spec`` (:class:`ChannelSpecInput`'s fields); a channel of the
    same name is a :class:`Conflict` (update it instead). Raises :class:`SpecError` naming the
    field at fault, e.g. ``agent`` for a voice agent."""
    name = spec.get("name") if isinstance(spec, Mapping) else None
    if isinstance(name, str) and await find_channel(session, workspace_id, name) is not None:
        raise Conflict(f"name: a channel named {name!r} already exists in this workspace; update it instead")
    validated = validate_channel_spec(spec, runtime_or_plugins)
    channel, _ = await create_or_update_channel(
        session, runtime_or_plugins, workspace_id, **validated.model_dump(exclude={"config"}), config=validated.config
    )
    return channel


async def channel_spec_of(session: AsyncSession, channel: Channel) -> dict[str, Any]:
    """The stored channel as a spec (agent and integration by name): what an update starts from."""
    agent = await find_agent(session, channel.workspace_id, channel.agent_id)
    integration = (
        await session.get(Integration, channel.integration_id) if channel.integration_id is not None else None
    )
    return {
        "name": channel.name,
        "kind": channel.kind,
        "agent": agent.name if agent else "",
        "integration": integration.name if integration else None,
        "slug": channel.slug,
        "config": copy.deepcopy(channel.config or {}),
        "replies": copy.deepcopy(channel.replies),
        "takeover_notice": channel.takeover_notice,
        "return_notice": channel.return_notice,
        "enabled": channel.enabled,
    }


async def update_channel(
    session: AsyncSession,
    runtime_or_plugins: Runtime | Plugins,
    workspace_id: str,
    name_or_id: str,
    changes: Mapping[str, Any],
) -> tuple[Channel, bool]:
    """Change some of a channel's fields (each given field replaces the stored one, whole).

    ``changes`` holds :class:`ChannelSpecInput` fields; a new ``name`` renames the channel
    (its public addresses use its id, so they keep working). The kind cannot
    change. Validated as a whole, as :func:`create_or_update_channel` does.
    """
    channel = await get_channel(session, workspace_id, name_or_id)
    if changes.get("kind", channel.kind) != channel.kind:
        raise Conflict(
            f"kind: channel {channel.name!r} is a {channel.kind} channel; a channel cannot change kind "
            "(create another channel)"
        )
    spec = validate_channel_spec({**await channel_spec_of(session, channel), **dict(changes)}, runtime_or_plugins)
    renamed = spec.name != channel.name
    if renamed:
        holder = await find_channel(session, workspace_id, spec.name)
        if holder is not None and holder.id != channel.id:
            raise Conflict(f"name: a channel named {spec.name!r} already exists in this workspace")
        channel.name = spec.name
        await session.flush()
    updated, changed = await create_or_update_channel(
        session, runtime_or_plugins, workspace_id, **spec.model_dump(exclude={"config"}), config=spec.config
    )
    return updated, changed or renamed


async def _write(session: AsyncSession, channel: Channel, spec: ChannelSpecInput) -> None:
    """Flush in a savepoint: a concurrent writer taking the name or slug first becomes a Conflict."""
    try:
        async with session.begin_nested():
            session.add(channel)
    except IntegrityError:
        raise Conflict(
            f"channel {spec.name!r} or slug {spec.slug!r} was just taken by another request; try again"
        ) from None


async def delete_channel(session: AsyncSession, workspace_id: str, name_or_id: str) -> Channel:
    """Delete a channel and its conversations (its webhook URLs stop answering)."""
    channel = await get_channel(session, workspace_id, name_or_id)
    await session.delete(channel)
    await session.flush()
    return channel


async def channel_agent(session: AsyncSession, channel: Channel) -> Agent:
    """The agent a channel answers with (same workspace, by construction)."""
    agent = await find_agent(session, channel.workspace_id, channel.agent_id)
    if agent is None:  # the foreign key makes this impossible short of manual edits
        raise NotFound(f"channel {channel.name!r} points at a missing agent")
    return agent


def describe_channel(channel: Channel, agent_name: str | None = None) -> dict[str, Any]:
    """The channel as people and APIs see it (configs hold no secrets: integrations are referenced)."""
    return {
        "id": channel.id,
        "name": channel.name,
        "kind": channel.kind,
        "agent_id": channel.agent_id,
        "agent": agent_name,
        "integration_id": channel.integration_id,
        "slug": channel.slug,
        "config": copy.deepcopy(channel.config or {}),
        "replies": describe_policy(reply_policy_of(channel.replies)),
        "takeover_notice": channel.takeover_notice,  # None: the default; "": none
        "return_notice": channel.return_notice,
        "enabled": channel.enabled,
        "created_at": channel.created_at.isoformat() if channel.created_at else None,
        "updated_at": channel.updated_at.isoformat() if channel.updated_at else None,
    }


def public_addresses(runtime: Runtime, channel: Channel) -> dict[str, str]:
    """What to paste or share for this channel (a provider's webhook URLs, an embed snippet,
    a link), as its channel type describes it; plugins receive the read-only snapshot."""
    from callable_agents.core.store.public_channels import channel_record  # it imports this module

    if channel.kind not in runtime.plugins.channels:
        return {}
    describe = runtime.plugins.channels.get(channel.kind).public_addresses
    return describe(runtime.settings, channel_record(channel)) if describe is not None else {}


async def channel_views(
    session: AsyncSession, runtime: Runtime, workspace_id: str, channels: Sequence[Channel]
) -> list[dict[str, Any]]:
    """:func:`describe_channel` of each, with the agent's and integration's names and the
    channel's public addresses: what the CLI, the admin API and the dashboard show."""
    agents = dict((await session.execute(select(Agent.id, Agent.name).where(Agent.workspace_id == workspace_id))).all())
    integrations = dict(
        (
            await session.execute(
                select(Integration.id, Integration.name).where(Integration.workspace_id == workspace_id)
            )
        ).all()
    )
    views = []
    for channel in channels:
        view: dict[str, Any] = {
            **describe_channel(channel, agents.get(channel.agent_id or "")),
            **public_addresses(runtime, channel),
        }
        view["integration"] = integrations.get(channel.integration_id or "")
        views.append(view)
    return views
