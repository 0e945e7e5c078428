"""The ``send_info`` tool: send the customer a prepared item (a link, a file, a text) word for word.

Some things must reach the customer exactly as the business wrote them — a booking link, the
menu as a PDF, the refund policy — rather than as the model's paraphrase. The business lists
them once; the model only picks one by key, and core delivers it as its own message after
the turn (a ``SendItem`` effect). The model is told it was sent, so it need not repeat it.

The ``offer_choices`` tool sends the model's question with a few choices (an ``OfferChoices``
effect): buttons or a list where the channel shows them, numbered elsewhere. The
``send_location`` tool sends where the business is (its coordinates in the tool's
config; name and address from the agent's business info) as a ``SendLocation`` effect: a
map pin on a channel that can show one (WhatsApp), its name, address and a map link elsewhere.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from callable_agents.plugin import (
    Effect,
    OfferChoices,
    SendItem,
    SendLocation,
    ToolContext,
    ToolType,
    check_http_url,
    effect_tool,
    hookimpl,
)


if TYPE_CHECKING:
    from langchain_core.tools import BaseTool

KEY_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
CONTENT_TYPE_PATTERN = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]{0,126}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}$")
DEFAULT_DESCRIPTION = (
    "Send the customer one of these prepared items as its own message, exactly as written, "
    "instead of retyping it."
)
MAX_ITEMS = 50


class InfoItem(BaseModel):
    """One item the agent can send: a link (``url``), a media file (``url`` + ``content_type``) or a text."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    key: str = Field(description="Short identifier the model picks it by, e.g. 'menu' (a-z, 0-9, '-', '_').")
    label: str = Field(min_length=1, max_length=200, description="What it is, shown to the model and the customer.")
    kind: Literal["link", "media", "text"]
    url: str | None = Field(default=None, max_length=2000, description="For link and media: an http(s) URL.")
    text: str | None = Field(default=None, max_length=4000, description="For text: the message, word for word.")
    content_type: str | None = Field(default=None, description="For media: e.g. application/pdf, image/jpeg.")

    @field_validator("key")
    @classmethod
    def _check_key(cls, key: str) -> str:
        if not KEY_PATTERN.match(key):
            raise ValueError("expected 1-63 lowercase letters, digits, '-' or '_', starting with a letter or digit")
        return key

    @field_validator("url")
    @classmethod
    def _check_url(cls, url: str | None) -> str | None:
        return None if url is None else check_http_url(url)

    @field_validator("content_type")
    @classmethod
    def _check_content_type(cls, content_type: str | None) -> str | None:
        if content_type is None:
            return None
        content_type = content_type.lower()
        if not CONTENT_TYPE_PATTERN.match(content_type):
            raise ValueError("expected a media type like application/pdf or image/jpeg")
        return content_type

    @model_validator(mode="after")
    def _check_kind(self) -> InfoItem:
        where = f"item {self.key!r}"
        if self.kind in ("link", "media") and self.url is None:
            raise ValueError(f"{where}: url: required for kind {self.kind!r} (an http:// or https:// URL)")
        if self.kind in ("link", "media") and self.text is not None:
            raise ValueError(f"{where}: text: only used by kind 'text' (the label is sent with a {self.kind})")
        if self.kind == "text" and not self.text:
            raise ValueError(f"{where}: text: required for kind 'text'")
        if self.kind == "text" and self.url is not None:
            raise ValueError(f"{where}: url: only used by kinds 'link' and 'media' (put a link inside the text)")
        if self.kind != "media" and self.content_type is not None:
            raise ValueError(f"{where}: content_type: only used by kind 'media'")
        return self


class SendInfoConfig(BaseModel):
    """The items an agent may send, and optionally what the model is told about the tool."""

    model_config = ConfigDict(extra="forbid")

    items: list[InfoItem] = Field(min_length=1, max_length=MAX_ITEMS)
    description: str | None = Field(
        default=None, max_length=1000, description="What the model is told the tool does (default: a generic sentence)."
    )

    @field_validator("items")
    @classmethod
    def _unique_keys(cls, items: list[InfoItem]) -> list[InfoItem]:
        seen: set[str] = set()
        for item in items:
            if item.key in seen:
                raise ValueError(f"key {item.key!r} is used by two items; keys must be unique")
            seen.add(item.key)
        return items


def send_effect(item: InfoItem) -> SendItem:
    """The effect that delivers ``item`` as its own message, word for word."""
    if item.kind == "link":
        return SendItem(text=f"{item.label}: {item.url}")
    if item.kind == "media":
        return SendItem(text=item.label, media=[{"url": item.url, "content_type": item.content_type}])
    return SendItem(text=item.text or "")


def tool_description(config: SendInfoConfig) -> str:
    lines = [config.description or DEFAULT_DESCRIPTION, "Items:"]
    lines += [f"- {item.key}: {item.label} ({item.kind})" for item in config.items]
    return "\n".join(lines)


def arguments_schema(config: SendInfoConfig) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "item": {
                "type": "string",
                "enum": [item.key for item in config.items],
                "description": "Key of the item to send: "
                + "; ".join(f"{item.key} = {item.label}" for item in config.items),
            }
        },
        "required": ["item"],
    }


def send_item(config: SendInfoConfig, arguments: dict[str, Any], turn_effects: Sequence[Effect]) -> tuple[str, list[Effect]]:
    """The chosen item, once per turn: what the model is told and the effect to apply."""
    valid = ", ".join(f"{item.key} ({item.label})" for item in config.items)
    key = arguments.get("item")
    unknown = sorted(name for name in arguments if name != "item")
    if unknown:
        return f"Unknown argument {unknown[0][:40]!r}: this tool takes only 'item', one of: {valid}.", []
    if not isinstance(key, str):
        return f"Missing argument 'item': the key of the item to send, one of: {valid}.", []
    item = next((item for item in config.items if item.key == key), None)
    if item is None:
        return f"Unknown item {key[:60]!r}. Valid items: {valid}.", []
    effect = send_effect(item)
    if effect in turn_effects:
        return f"'{item.label}' was already sent to the customer in this turn.", []
    return f"Sent '{item.label}' to the customer as its own message.", [effect]


def build_send_info_tool(context: ToolContext) -> BaseTool:
    config = context.config
    if not isinstance(config, SendInfoConfig):
        raise TypeError(f"send_info tool {context.tool_name!r}: expected a SendInfoConfig, got {type(config).__name__}")

    def run(arguments: dict[str, Any], turn_effects: Sequence[Effect]) -> tuple[str, list[Effect]]:
        return send_item(config, arguments, turn_effects)

    return effect_tool(name=context.tool_name, description=tool_description(config), args_schema=arguments_schema(config), run=run)


class SendLocationConfig(BaseModel):
    """Where the business is: a map pin the agent can send (``send_location``)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    latitude: float = Field(ge=-90, le=90, description="Degrees north (negative: south), e.g. 41.4036.")
    longitude: float = Field(ge=-180, le=180, description="Degrees east (negative: west), e.g. 2.1744.")
    label: str = Field(default="", max_length=200, description="The place's name (default: the business's name).")
    address: str = Field(default="", max_length=500, description="Its address (default: the business's address).")
    description: str | None = Field(
        default=None, max_length=1000, description="What the model is told the tool does (default: a generic sentence)."
    )


DEFAULT_LOCATION_DESCRIPTION = (
    "Send the customer the business's location as a map pin (when they ask where the business is "
    "or how to get there)."
)


def location_effect(config: SendLocationConfig, business_info: Mapping[str, Any]) -> SendLocation:
    """The business's location; name and address from the business info unless the config gives them."""
    return SendLocation(
        latitude=config.latitude,
        longitude=config.longitude,
        label=config.label or str(business_info.get("name") or ""),
        address=config.address or str(business_info.get("address") or ""),
    )


def build_send_location_tool(context: ToolContext) -> BaseTool:
    config = context.config
    if not isinstance(config, SendLocationConfig):
        raise TypeError(f"send_location tool {context.tool_name!r}: expected a SendLocationConfig, got {type(config).__name__}")
    effect = location_effect(config, context.business_info)

    def run(arguments: dict[str, Any], turn_effects: Sequence[Effect]) -> tuple[str, list[Effect]]:
        if arguments:
            return f"Unknown argument {sorted(arguments)[0][:40]!r}: this tool takes no arguments.", []
        if effect in turn_effects:
            return "The location was already sent to the customer in this turn.", []
        where = ", ".join(part for part in (effect.label, effect.address) if part) or "the business"
        return f"Sent the location of {where} to the customer as its own message (a map pin).", [effect]

    return effect_tool(
        name=context.tool_name,
        description=config.description or DEFAULT_LOCATION_DESCRIPTION,
        args_schema={"type": "object", "properties": {}},
        run=run,
    )


MAX_CHOICES = 20
MAX_CHOICE_TITLE = 60
DEFAULT_CHOICES_DESCRIPTION = (
    "Offer the customer a few choices to tap (buttons on WhatsApp, a numbered list elsewhere) "
    "when they must pick one of them, e.g. a size, a day or a branch. Their pick (its title or "
    "number) comes back as their next message."
)


class OfferChoicesConfig(BaseModel):
    """The ``offer_choices`` tool: nothing to configure but what the model is told."""

    model_config = ConfigDict(extra="forbid")

    description: str | None = Field(
        default=None, max_length=1000, description="What the model is told the tool does (default: a generic sentence)."
    )


def offer_choices(arguments: dict[str, Any], turn_effects: Sequence[Effect]) -> tuple[str, list[Effect]]:
    """The model's question and choices as an ``OfferChoices`` effect, once per turn."""
    unknown = sorted(name for name in arguments if name not in ("text", "choices"))
    if unknown:
        return f"Unknown argument {unknown[0][:40]!r}: this tool takes 'text' and 'choices'.", []
    text, choices = arguments.get("text"), arguments.get("choices")
    if not isinstance(text, str) or not text.strip():
        return "Missing argument 'text': the question the choices answer.", []
    if (
        not isinstance(choices, list) or not 2 <= len(choices) <= MAX_CHOICES
        or not all(isinstance(c, str) and c.strip() for c in choices)
    ):
        return f"Argument 'choices': expected 2 to {MAX_CHOICES} short texts.", []
    titles = [" ".join(c.split())[:MAX_CHOICE_TITLE] for c in choices]
    if len(set(titles)) != len(titles):
        return "Argument 'choices': every choice must be different.", []
    if any(isinstance(effect, OfferChoices) for effect in turn_effects):
        return "Choices were already offered in this turn; wait for the customer's pick.", []
    effect = OfferChoices(text=text.strip()[:1000], choices=[{"id": f"choice-{n}", "title": t} for n, t in enumerate(titles, 1)])
    numbered = "; ".join(f"{n}. {t}" for n, t in enumerate(titles, 1))
    return (
        f"Offered the customer these choices: {numbered}. Their next message is their pick: a title, "
        "or a number meaning the choice with that number.",
        [effect],
    )


def build_offer_choices_tool(context: ToolContext) -> BaseTool:
    config = context.config
    if not isinstance(config, OfferChoicesConfig):
        raise TypeError(f"offer_choices tool {context.tool_name!r}: expected an OfferChoicesConfig, got {type(config).__name__}")
    schema = {
        "type": "object",
        "properties": {
            "text": {"type": "string", "description": "The question, e.g. 'Which size would you like?'"},
            "choices": {
                "type": "array", "items": {"type": "string"}, "minItems": 2, "maxItems": MAX_CHOICES,
                "description": "The choices, short (a few words each); up to 3 show as buttons, up to 10 as a list.",
            },
        },
        "required": ["text", "choices"],
    }
    return effect_tool(
        name=context.tool_name, description=config.description or DEFAULT_CHOICES_DESCRIPTION, args_schema=schema,
        run=offer_choices,
    )


@hookimpl
def register_tools() -> list[ToolType]:
    return [
        ToolType(
            name="send_info",
            description="Send the customer a prepared link, file or text exactly as you wrote it.",
            config_schema=SendInfoConfig,
            factory=build_send_info_tool,
        ),
        ToolType(
            name="offer_choices",
            description="Offer the customer choices to tap: buttons or a list on WhatsApp, numbered elsewhere.",
            config_schema=OfferChoicesConfig,
            factory=build_offer_choices_tool,
        ),
        ToolType(
            name="send_location",
            description="Send the customer the business's location (a map pin on WhatsApp, a map link elsewhere).",
            config_schema=SendLocationConfig,
            factory=build_send_location_tool,
        ),
    ]
