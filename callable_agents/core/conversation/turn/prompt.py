"""The model's prompt: a static prefix (system prompt, business info, rules, channel guidance,
tools), the trimmed history, and the turn's knowledge passages, within a token budget."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, trim_messages

from callable_agents.core.contracts.channels import ChannelCapabilities
from callable_agents.core.contracts.effects import picked_title
from callable_agents.core.conversation.turn.context import TurnDeps
from callable_agents.core.reply import as_dialect

PROMPT_TOKEN_BUDGET = 6_000  # history + passages; the static prefix comes on top
PASSAGE_CHAR_LIMIT = 1_200

# For channels that give no guidance of their own (ChannelCapabilities.prompt_guidance).
DIALECT_GUIDANCE: dict[str, str] = {
    "markdown": "You are replying in a website chat. Short paragraphs; simple Markdown (bold, lists, links) is fine.",
    "plain": "Reply in plain text without formatting.",
}


def text_of(message: BaseMessage) -> str:
    content = message.content
    if isinstance(content, str):
        return content
    return " ".join(part.get("text", "") for part in content if isinstance(part, dict) and part.get("type") == "text")


def latest_customer_text(messages: Sequence[BaseMessage]) -> str:
    """The customer's messages since the agent last spoke (several in a row are answered
    together), joined: what retrieval searches for and offline mode answers. A message that
    picked one of the agent's choices (a tap, or a number typed: ``describe_pick``) stands
    as that choice's title, the words it means."""
    collected: list[str] = []
    for message in reversed(messages):
        if isinstance(message, HumanMessage):
            text = text_of(message)
            collected.append(picked_title(text) or text)
        elif isinstance(message, AIMessage):
            break
    return "\n".join(reversed(collected)).strip()


def business_info_text(info: Mapping[str, Any]) -> str:
    labels = [
        ("name", "Business"),
        ("description", "About"),
        ("hours", "Opening hours"),
        ("address", "Address"),
        ("phone", "Phone"),
        ("email", "Email"),
        ("website", "Website"),
    ]
    lines = [f"- {label}: {info[key]}" for key, label in labels if info.get(key)]
    facts = info.get("facts") or []
    lines.extend(f"- {fact}" for fact in facts if isinstance(fact, str) and fact.strip())
    return "\n".join(lines)


def channel_guidance(capabilities: ChannelCapabilities) -> str:
    """The channel's own guidance, or the sentence for its formatting dialect."""
    return capabilities.prompt_guidance or DIALECT_GUIDANCE.get(as_dialect(capabilities.formatting).name, DIALECT_GUIDANCE["markdown"])


def static_prompt(agent: Any, capabilities: ChannelCapabilities, tool_names: Sequence[str]) -> str:
    """The part of the prompt that is the same for every turn: first, so prompt caching works."""
    sections = [
        (getattr(agent, "system_prompt", "") or "You are a helpful assistant for this business.").strip(),
        "Business information:\n" + (business_info_text(getattr(agent, "business_info", {}) or {}) or "- (none given)"),
        "Grounding rules: answer only from the business information above and the knowledge passages given "
        "with each question. After each sentence that uses a passage, put its number in brackets, like [2]; "
        "mark only the passages you used. If the answer is not there, "
        "say you don't know and offer to connect the customer with a person. Never invent prices, times, "
        "policies or order details.",
        channel_guidance(capabilities),
    ]
    if tool_names:
        sections.append(
            "You can use these tools: " + ", ".join(tool_names) + ". Use a tool when the customer needs what it does; "
            "if the customer asks for a person, use the tool that hands the conversation to one."
        )
    return "\n\n".join(sections)


def passages_prompt(passages: Sequence[Mapping[str, Any]]) -> str:
    if not passages:
        return (
            "Knowledge passages for the latest message: none matched. If the business information does not "
            "answer it, say you don't know and offer a person."
        )
    blocks = []
    for index, passage in enumerate(passages, start=1):
        where = passage.get("title") or "untitled"
        if passage.get("url"):
            where += f" ({passage['url']})"
        text = str(passage.get("text", ""))[:PASSAGE_CHAR_LIMIT]
        blocks.append(f"[{index}] {where}\n{text}")
    return "Knowledge passages for the latest message:\n\n" + "\n\n".join(blocks)


def _approx_tokens(messages: Sequence[BaseMessage]) -> int:
    return sum(len(text_of(message)) // 4 + 4 for message in messages)


def build_prompt(messages: Sequence[BaseMessage], passages: Sequence[Mapping[str, Any]], deps: TurnDeps) -> list[BaseMessage]:
    """System prompt (static) + trimmed history + the turn's passages, within the token budget."""
    tool_names = [tool.name for tool in deps.tools]
    context_message = SystemMessage(passages_prompt(passages))
    budget = max(500, PROMPT_TOKEN_BUDGET - _approx_tokens([context_message]))
    history = trim_messages(
        list(messages),
        max_tokens=budget,
        token_counter=_approx_tokens,
        strategy="last",
        start_on="human",
        allow_partial=False,
    )
    return [SystemMessage(static_prompt(deps.agent, deps.capabilities, tool_names)), *history, context_message]
