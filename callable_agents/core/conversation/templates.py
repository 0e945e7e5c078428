"""The templates a person may send on a channel, whatever its kind.

A channel type may list them from its provider (``ChannelType.channel_templates``: the
channel's configured template first, then the account's approved ones); otherwise, or when
the provider cannot be asked, the configured ones from the channel's config
(``ChannelType.reply_templates``). Core names no channel type: it asks the type.
"""

from __future__ import annotations

import logging
from typing import Any

from callable_agents.core.contracts.channels import ChannelTemplatesError, ReplyTemplate
from callable_agents.core.models import Channel
from callable_agents.core.runtime import Runtime

log = logging.getLogger(__name__)


def configured_templates(runtime: Runtime, channel: Channel) -> list[ReplyTemplate]:
    """The channel's own templates, from its config (no provider call)."""
    if channel.kind not in runtime.plugins.channels:
        return []
    channel_type = runtime.plugins.channels.get(channel.kind)
    return channel_type.reply_templates(dict(channel.config or {})) if channel_type.reply_templates else []


async def available_templates(runtime: Runtime, channel: Channel, *, strict: bool = False) -> list[ReplyTemplate]:
    """The templates a person may send on ``channel``: its configured one first, then the
    provider account's approved ones. When the provider can't be asked, the configured ones
    (logged), or :class:`ChannelTemplatesError` with ``strict``."""
    if channel.kind not in runtime.plugins.channels:
        return []
    channel_type = runtime.plugins.channels.get(channel.kind)
    if channel_type.channel_templates is None:
        return configured_templates(runtime, channel)
    try:
        return await channel_type.channel_templates(runtime, channel.id)
    except ChannelTemplatesError as exc:
        if strict:
            raise
        log.warning("channel %s: listing its templates failed (%s); offering its configured ones", channel.id, exc)
        return configured_templates(runtime, channel)


def template_view(template: ReplyTemplate) -> dict[str, Any]:
    """A template as the admin API and ``--json`` show it."""
    return {
        "id": template.id,
        "label": template.label,
        "name": template.name,
        "language": template.language,
        "category": template.category,
        "status": template.status,
        "configured": template.configured,
        "variables": dict(template.variables),
        "takes_text": template.takes_text,
    }
