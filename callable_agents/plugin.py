"""The public plugin surface: everything a plugin imports from Callable Agents.

    from callable_agents.plugin import hookimpl, ChannelType, ToolType, ...

Built-in plugins import only from this module (and from their own package), exactly as a
third-party package does; a test enforces it. What is not exported here is internal and may
change without notice.
"""

from __future__ import annotations

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
from callable_agents.core.errors import CallableError, InvalidInput, NotFound
from callable_agents.core.request_input import BIGINT_MAX, check_text, parse_int, parse_json
from callable_agents.core.runtime import Runtime, runtime_of

__all__ = [
    "BIGINT_MAX",
    "CallableError",
    "ChannelCapabilities",
    "ChannelType",
    "Document",
    "EmbeddingsRequest",
    "EmbeddingsType",
    "HandoffEvent",
    "InvalidInput",
    "LoadError",
    "LoadRequest",
    "LoaderType",
    "MessageEvent",
    "NotFound",
    "OutboundMessage",
    "Runtime",
    "SendError",
    "SendResult",
    "SourceDraft",
    "ToolContext",
    "ToolType",
    "TurnStarted",
    "check_text",
    "hookimpl",
    "parse_int",
    "parse_json",
    "runtime_of",
]
