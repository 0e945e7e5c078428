"""Event payloads passed to the event hooks: plain snapshots, safe to keep after the turn."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class MessageEvent:
    workspace_id: str
    channel_id: str
    channel_kind: str
    conversation_id: str
    message_id: int
    author: str
    text: str
    media: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class HandoffEvent:
    workspace_id: str
    channel_id: str
    conversation_id: str
    reason: str
