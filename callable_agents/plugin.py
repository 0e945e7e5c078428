"""The public plugin surface: everything a plugin imports from Callable Agents.

    from callable_agents.plugin import hookimpl, ChannelType, ToolType, ...

Built-in plugins import only from this module (and from their own package), exactly as a
third-party package does; ``tests/test_plugin_surface.py`` enforces it. What is not exported
here is internal and may change without notice.

What is here, by concern:

* the hook marker and the types a plugin registers: channels, tools, knowledge loaders,
  embeddings, integration providers (with their field validators), event payloads;
* the process: :class:`Runtime`, :func:`runtime_of`, :class:`Settings` and
  :class:`PluginSettings` (a plugin's own ``CALLABLE_*`` settings), errors;
* inbound: :class:`InboundMessage`, :func:`accept_inbound` (store now, answer in the
  request) and :func:`queue_inbound` (file through the inbound queue; webhooks);
* outbound: :func:`record_delivery_status` with the provider's :class:`DeliveryRanks`;
* integrations: :class:`StoredIntegration` snapshots and :func:`read_integration_secret`.
"""

from __future__ import annotations

from callable_agents.core.config import PluginSettings, Settings
from callable_agents.core.contracts.channels import (
    ChannelCapabilities,
    ChannelType,
    OutboundMessage,
    SendError,
    SendResult,
    TurnStarted,
)
from callable_agents.core.contracts.events import HandoffEvent, MessageEvent
from callable_agents.core.contracts.hookspecs import hookimpl
from callable_agents.core.contracts.integrations import (
    HttpUrl,
    ProviderType,
    PublicFields,
    SecretFields,
    SecretText,
    StoredIntegration,
    Text,
    pattern_check,
)
from callable_agents.core.contracts.loaders import (
    Document,
    EmbeddingsRequest,
    EmbeddingsType,
    LoadError,
    LoaderType,
    LoadRequest,
    SourceDraft,
)
from callable_agents.core.contracts.tools import ToolContext, ToolType
from callable_agents.core.conversation.outbound.status import DeliveryRanks, DeliveryStatus, record_delivery_status
from callable_agents.core.conversation.pipeline import InboundMessage, accept_inbound, queue_inbound
from callable_agents.core.errors import CallableError, Conflict, InvalidInput, NotFound
from callable_agents.core.runtime import Runtime, runtime_of
from callable_agents.core.store.integrations import (
    read_integration_secret,
    read_named_integration,
    read_provider_integrations,
)

__all__ = [
    "CallableError",
    "ChannelCapabilities",
    "ChannelType",
    "Conflict",
    "DeliveryRanks",
    "DeliveryStatus",
    "Document",
    "EmbeddingsRequest",
    "EmbeddingsType",
    "HandoffEvent",
    "HttpUrl",
    "InboundMessage",
    "InvalidInput",
    "LoadError",
    "LoadRequest",
    "LoaderType",
    "MessageEvent",
    "NotFound",
    "OutboundMessage",
    "PluginSettings",
    "ProviderType",
    "PublicFields",
    "Runtime",
    "SecretFields",
    "SecretText",
    "SendError",
    "SendResult",
    "Settings",
    "SourceDraft",
    "StoredIntegration",
    "Text",
    "ToolContext",
    "ToolType",
    "TurnStarted",
    "accept_inbound",
    "hookimpl",
    "pattern_check",
    "queue_inbound",
    "read_integration_secret",
    "read_named_integration",
    "read_provider_integrations",
    "record_delivery_status",
    "runtime_of",
]
