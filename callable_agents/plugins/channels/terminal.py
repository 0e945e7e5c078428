"""The terminal channel: ``callable chat AGENT`` talks to an agent through the real pipeline.

Delivery is a no-op that reports success: the command prints replies as the pipeline
stores them. It is a plugin like any other channel.
"""

from __future__ import annotations

from pydantic import BaseModel

from callable_agents.core.channels import ChannelCapabilities, ChannelType, OutboundMessage, SendResult
from callable_agents.core.hookspecs import hookimpl
from callable_agents.core.runtime import Runtime


class TerminalConfig(BaseModel):
    pass


async def send(runtime: Runtime, message: OutboundMessage) -> SendResult:
    return SendResult(provider_message_id=f"terminal-{message.message_id}", status="delivered")


@hookimpl
def register_channels() -> list[ChannelType]:
    return [
        ChannelType(
            name="terminal",
            description="A terminal session (callable chat)",
            config_schema=TerminalConfig,
            capabilities=ChannelCapabilities(formatting="markdown", citations=True, streaming=True),
            send=send,
        )
    ]
