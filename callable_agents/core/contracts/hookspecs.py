"""The plugin contract: pluggy hook specifications for project ``callable_agents``.

A plugin is a module or object with ``@hookimpl`` functions, registered from the
``callable_agents`` entry-point group (built-ins use the same group). Registration hooks
return lists of type descriptions; event hooks are notifications whose return value is
ignored. An event hook may be ``async def``: its coroutine is awaited. Where one answer is
wanted from several plugins a spec says ``firstresult=True``; a registered type answers for
its own name instead (a provider's ``verify``, a channel's ``send``), so no plugin has to
recognise and skip another's arguments.

Hook implementations may accept any subset of a spec's arguments, never others.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from callable_agents.core.contracts.channels import ChannelType
    from callable_agents.core.contracts.events import HandoffEvent, MessageEvent
    from callable_agents.core.contracts.integrations import ProviderType
    from callable_agents.core.contracts.loaders import EmbeddingsType, LoaderType
    from callable_agents.core.contracts.tools import ToolType
    from callable_agents.core.contracts.jobs import JobKind

PROJECT_NAME = "callable_agents"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def register_channels() -> Sequence[ChannelType]:
    """Return the channel types this plugin provides (e.g. a messaging app, a website chat).

    A channel type names its config schema, its Starlette routes (mounted by the server),
    its ``send`` function and its capabilities (maximum message length, formatting dialect,
    media). Names are global: two plugins registering the same name stop start-up.
    """


@hookspec
def register_tools() -> Sequence[ToolType]:
    """Return the tool types this plugin provides (e.g. look something up, hand off to a person).

    A tool type has a description, a config schema (secrets referenced by integration name,
    never inlined) and a factory that builds one LangChain tool for one agent and one turn.
    """


@hookspec
def register_knowledge_loaders() -> Sequence[LoaderType]:
    """Return the knowledge source types this plugin can load (e.g. ``url``, ``file``, ``text``).

    A loader turns one source into documents (text + title, URL, page metadata); the
    knowledge base chunks, embeds and indexes them.
    """


@hookspec
def register_embeddings() -> Sequence[EmbeddingsType]:
    """Return embedding model types (a name and a factory for a LangChain ``Embeddings``)."""


@hookspec
def register_integration_providers() -> Sequence[ProviderType]:
    """Return the integration providers this plugin knows (a messaging provider's account, a model server).

    A provider type names its public fields (stored in clear), its secret fields (encrypted
    by the vault, write-only) and optionally ``verify``, an async function that proves a new
    integration's credentials work before it is stored (``callable integrations connect``,
    ``POST /api/v1/integrations``) and raises a ``CallableError`` saying why the provider
    refused them. Names are global, like channel names.
    """


@hookspec
def register_job_kinds() -> Sequence[JobKind]:
    """Return the job kinds this plugin runs (e.g. a tool's signed webhook).

    A job of a kind is queued by a tool's ``QueueJob`` effect (committed with the turn's
    result) and run by the worker with retries. Names are global, like type names.
    """


@hookspec
def message_received(event: MessageEvent) -> None:
    """A customer's message was accepted and stored (after dedupe; once per message)."""


@hookspec
def reply_sent(event: MessageEvent) -> None:
    """A reply (agent's or a person's) was handed to the channel and accepted by it."""


@hookspec
def conversation_handed_off(event: HandoffEvent) -> None:
    """A conversation moved to a person; the agent stays silent until it is returned."""


@hookspec
def conversation_returned(event: HandoffEvent) -> None:
    """A person returned a handed-off conversation to the agent."""


EVENT_HOOKS: tuple[str, ...] = (
    "message_received",
    "reply_sent",
    "conversation_handed_off",
    "conversation_returned",
)
