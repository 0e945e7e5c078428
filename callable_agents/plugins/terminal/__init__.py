"""The terminal channel: ``callable chat AGENT`` talks to an agent through the real pipeline.

It delivers by storing (``send=None``): the command prints replies as the pipeline stores
them. It is a plugin like any other channel.
"""

from __future__ import annotations

from pydantic import BaseModel

from callable_agents.plugin import ChannelCapabilities, ChannelType, hookimpl


class TerminalConfig(BaseModel):
    pass


@hookimpl
def register_channels() -> list[ChannelType]:
    return [
        ChannelType(
            name="terminal",
            description="A terminal session (callable chat)",
            config_schema=TerminalConfig,
            # `callable chat` prints whole replies, so the model answers in one response.
            capabilities=ChannelCapabilities(formatting="markdown", citations=True),
            send=None,  # replies are printed from the store
            title="Terminal",
        )
    ]
