"""``callable chat AGENT``: talk to an agent from the terminal, through the real pipeline.

Messages go through ``accept_inbound``, a turn job, the graph and the terminal channel's
``send``, exactly like a WhatsApp or widget message; a worker runs in this process. Replies
are stored in Markdown like every channel's and printed as plain text (a terminal would
show ``**`` and ``_`` literally).
"""

from __future__ import annotations

import sys

import click
from sqlalchemy import select

from callable_agents.cli.common import cli_settings, resolve_workspace, with_runtime, workspace_option
from callable_agents.core.errors import InvalidInput, NotFound
from callable_agents.core.jobs import Worker
from callable_agents.core.models import Agent, Channel, Message
from callable_agents.core.conversation.inbound import InboundMessage, accept_inbound
from callable_agents.core.conversation.jobs import register_conversation_jobs
from callable_agents.core.reply.rendering import format_for
from callable_agents.core.runtime import Runtime

TERMINAL_KIND = "terminal"


async def terminal_channel(runtime: Runtime, workspace_id: str, agent_name: str) -> Channel:
    """The agent's terminal channel, created on first use."""
    async with runtime.db.session() as session:
        agent = await session.scalar(select(Agent).where(Agent.workspace_id == workspace_id, Agent.name == agent_name))
        if agent is None:
            raise NotFound(f"agent {agent_name!r} not found: `callable agents list` shows the agents")
        if agent.kind != "chat":
            raise InvalidInput(f"agent {agent_name!r} is a {agent.kind} agent: attach a chat agent")
        name = f"terminal-{agent.name}"[:100]
        channel = await session.scalar(select(Channel).where(Channel.workspace_id == workspace_id, Channel.name == name))
        if channel is None:
            channel = Channel(workspace_id=workspace_id, kind=TERMINAL_KIND, name=name, agent_id=agent.id)
            session.add(channel)
            await session.flush()
        return channel


@click.command("chat")
@click.argument("agent")
@click.option("--user", default="you", show_default=True, help="Who you are in the conversation.")
@workspace_option
def chat(agent: str, user: str, workspace: str | None) -> None:
    """Chat with AGENT in the terminal (empty line or Ctrl+D to leave)."""

    async def action(runtime: Runtime) -> None:
        target = await resolve_workspace(runtime, workspace)
        channel = await terminal_channel(runtime, target.id, agent)
        register_conversation_jobs(runtime)
        worker = Worker(runtime)
        interactive = sys.stdin.isatty()
        click.echo(f"Chatting with {agent} (workspace {target.slug}). Empty line to leave.", err=True)
        last_seen = 0
        while True:
            line = click.prompt("you", default="", show_default=False) if interactive else sys.stdin.readline()
            text = line.strip()
            if not text:
                return
            accepted = await accept_inbound(runtime, channel, InboundMessage(external_user_id=f"terminal:{user}", text=text))
            last_seen = max(last_seen, accepted.message_id)
            await worker.drain(timeout=120, lanes=[accepted.conversation_id, f"send:{accepted.conversation_id}"])
            async with runtime.db.session() as session:
                replies = (
                    await session.scalars(
                        select(Message)
                        .where(
                            Message.conversation_id == accepted.conversation_id,
                            Message.direction == "outbound",
                            Message.id > last_seen,
                        )
                        .order_by(Message.id)
                    )
                ).all()
            for reply in replies:
                last_seen = max(last_seen, reply.id)
                label = agent if reply.author == "agent" else reply.author
                media = "".join(f"\n  [{item.get('content_type') or 'link'}] {item.get('url')}" for item in reply.media or [])
                click.echo(f"{label}: {format_for(reply.text or '', 'plain')}{media}")

    with_runtime(action, settings=cli_settings())


COMMANDS = [chat]
