"""The public plugin surface: everything a plugin imports from Callable Agents.

    from callable_agents.plugin import hookimpl, ChannelType, ToolType, ...

Built-in plugins import only from this module (and from their own package), exactly as a
third-party package does; ``tests/test_plugin_surface.py`` enforces it. What is not exported
here is internal and may change without notice.

What is here, by concern:

* the hook marker and the types a plugin registers: channels (with their optional
  :class:`ChannelSetup`: senders, "configure the provider for me", a test message), tools, knowledge loaders,
  embeddings, integration providers (with their field validators), event payloads;
* the process: :class:`Runtime`, :func:`runtime_of`, :class:`Settings` and
  :class:`PluginSettings` (a plugin's own ``CALLABLE_*`` settings), errors;
* inbound: :class:`InboundMessage`, :func:`accept_inbound` (store now, answer in the
  request) and :func:`queue_inbound` (file through the inbound queue; webhooks);
  :func:`describe_pick` (a tapped choice as the agent reads it);
* outbound: :func:`record_delivery_status` with the provider's :class:`DeliveryRanks`;
* reads for public endpoints and chat surfaces, as frozen snapshots (never ORM rows):
  :func:`read_public_channel`, :func:`read_public_page`, :func:`read_channel_account`,
  :func:`find_conversation`, :func:`read_messages`, :func:`read_conversation_updates`, ...;
  live events through :class:`StreamHub`;
* integrations: :class:`StoredIntegration` snapshots, :func:`read_named_integration(s)`,
  :func:`read_provider_integrations` and :func:`read_integration_secret`;
* metrics: :func:`count_webhook` (a provider webhook's outcome, e.g. rejected) and
  :func:`count_provider_error` (a provider's error code);
* HTTP safety for plugins that fetch URLs (:func:`check_http_url`, :func:`guarded_targets`,
  :func:`shared_http_client`, ...), and for embeddings :class:`ModelConfig`,
  :func:`build_embeddings` and the chunker's ``TOKENIZER_NAME``.
"""

from __future__ import annotations

from callable_agents.core.config import PluginSettings, Settings
from callable_agents.core.contracts.channels import (
    ChannelCapabilities,
    ChannelMediaError,
    ChannelSetup,
    ChannelSetupError,
    ChannelTemplatesError,
    ChannelType,
    ConfigureResult,
    OutboundMessage,
    ReplyTemplate,
    SendError,
    SenderList,
    SenderOption,
    SendResult,
    TestMessageResult,
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
from callable_agents.core.request_input import BIGINT_MAX, check_text, parse_int, parse_json
from callable_agents.core.conversation.outbound.status import DeliveryRanks, DeliveryStatus, record_delivery_status
from callable_agents.core.conversation.inbound import InboundMessage, accept_inbound, queue_inbound
from callable_agents.core.conversation.reads import (
    ConversationRecord,
    ConversationUpdates,
    MessageRecord,
    find_conversation,
    find_conversation_id,
    read_conversation_updates,
    read_messages,
    read_session_start,
)
from callable_agents.core.conversation.streams import StreamHub
from callable_agents.core.limits import RateLimits, rate_limits
from callable_agents.core.errors import CallableError, Conflict, InvalidInput, NotFound
from callable_agents.core.http_safety import (
    HostNotFound,
    PinnedTarget,
    UnsafeAddress,
    check_http_url,
    guarded_targets,
    is_public_address,
    pin_to_address,
    shared_http_client,
)
from callable_agents.core.knowledge.chunking import TOKENIZER_NAME
from callable_agents.core.llm import ModelConfig, build_embeddings
from callable_agents.core.runtime import Runtime, runtime_of
from callable_agents.core.store.channels import SLUG_PATTERN
from callable_agents.core.store.public_channels import (
    AgentRecord,
    ChannelAccount,
    ChannelRecord,
    read_channel_account,
    read_public_channel,
    read_channel_agent,
    read_public_page,
)
from callable_agents.core.store.integrations import (
    WorkspaceKey,
    read_integration_secret,
    read_named_integration,
    read_named_integrations,
    read_provider_integrations,
)

from callable_agents.core.contracts.channels import ConversationInfo, InboundMedia
from callable_agents.core.contracts.effects import (
    Effect,
    HandOff,
    OfferChoices,
    QueueJob,
    SendItem,
    SendLocation,
    describe_pick,
)
from callable_agents.core.contracts.jobs import JobHandler, JobKind
from callable_agents.core.contracts.tools import effect_tool
from callable_agents.core.conversation.messages import delivery_progress, record_delivery_progress, record_media_note
from callable_agents.core.conversation.people import hand_off, return_to_agent, send_human_reply
from callable_agents.core.conversation.reads import read_conversation
from callable_agents.core.jobs import PermanentFailure, RetryLater
from callable_agents.core.jobs import complete as complete_job
from callable_agents.core.models import Job
from callable_agents.core.observability.metrics import count_provider_error, count_webhook
from callable_agents.core.reply import MARKDOWN, PLAIN, STARRED, Dialect, LengthUnit, Markup, split_message, utf16_length
from callable_agents.core.store.agents import read_model_integration_name
from callable_agents.core.store.integrations import NAME_PATTERN as INTEGRATION_NAME_PATTERN

__all__ = [
    "AgentRecord",
    "BIGINT_MAX",
    "CallableError",
    "ChannelAccount",
    "ChannelCapabilities",
    "ChannelMediaError",
    "ChannelRecord",
    "ChannelSetup",
    "ChannelSetupError",
    "ChannelTemplatesError",
    "ChannelType",
    "ReplyTemplate",
    "ConfigureResult",
    "Conflict",
    "ConversationInfo",
    "ConversationRecord",
    "ConversationUpdates",
    "DeliveryRanks",
    "DeliveryStatus",
    "Dialect",
    "LengthUnit",
    "Document",
    "Effect",
    "EmbeddingsRequest",
    "EmbeddingsType",
    "HandOff",
    "HandoffEvent",
    "HostNotFound",
    "HttpUrl",
    "INTEGRATION_NAME_PATTERN",
    "InboundMedia",
    "InboundMessage",
    "InvalidInput",
    "Job",
    "JobHandler",
    "JobKind",
    "LoadError",
    "LoadRequest",
    "LoaderType",
    "MARKDOWN",
    "Markup",
    "MessageEvent",
    "MessageRecord",
    "ModelConfig",
    "NotFound",
    "OutboundMessage",
    "PLAIN",
    "PermanentFailure",
    "PinnedTarget",
    "PluginSettings",
    "ProviderType",
    "PublicFields",
    "QueueJob",
    "RetryLater",
    "Runtime",
    "SLUG_PATTERN",
    "STARRED",
    "SecretFields",
    "SecretText",
    "SendError",
    "OfferChoices",
    "describe_pick",
    "SendItem",
    "SendLocation",
    "SendResult",
    "SenderList",
    "SenderOption",
    "Settings",
    "SourceDraft",
    "StoredIntegration",
    "StreamHub",
    "RateLimits",
    "TOKENIZER_NAME",
    "TestMessageResult",
    "Text",
    "ToolContext",
    "ToolType",
    "TurnStarted",
    "UnsafeAddress",
    "WorkspaceKey",
    "accept_inbound",
    "rate_limits",
    "build_embeddings",
    "check_http_url",
    "check_text",
    "complete_job",
    "count_provider_error",
    "count_webhook",
    "delivery_progress",
    "effect_tool",
    "find_conversation",
    "find_conversation_id",
    "guarded_targets",
    "hand_off",
    "hookimpl",
    "is_public_address",
    "parse_int",
    "parse_json",
    "pattern_check",
    "pin_to_address",
    "queue_inbound",
    "read_channel_account",
    "read_conversation",
    "read_conversation_updates",
    "read_integration_secret",
    "read_messages",
    "read_model_integration_name",
    "read_named_integration",
    "read_named_integrations",
    "read_provider_integrations",
    "read_public_channel",
    "read_channel_agent",
    "read_public_page",
    "read_session_start",
    "record_delivery_progress",
    "record_delivery_status",
    "record_media_note",
    "return_to_agent",
    "runtime_of",
    "send_human_reply",
    "shared_http_client",
    "split_message",
    "utf16_length",
]
