"""Twilio's Content API for a WhatsApp channel: interactive choices and the approved templates.

* :func:`create_choices_content` makes the content a set of choices is sent as: quick-reply
  buttons for up to :data:`MAX_BUTTONS` choices, a list picker for up to :data:`MAX_LIST_ITEMS`
  (WhatsApp's limits for messages inside the 24-hour window, which need no approval). The
  customer's tap comes back on the inbound webhook as ``ButtonPayload`` (the choice's id) and
  ``ButtonText`` (its title), or ``ListId`` / ``ListTitle`` for a list item.
* :func:`list_templates` lists the account's templates WhatsApp approved (name, language,
  variables, category), from ``ContentAndApprovals``.

Both go through the tenant's own ``twilio`` client (``client.content.v1``); errors become
:class:`SendError` like every other Twilio call.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
from twilio.base.exceptions import TwilioException
from twilio.rest import Client
from twilio.rest.content.v1.content import ContentList

from callable_agents.plugin import SendError
from callable_agents.plugins.whatsapp.twilio_api import _send_error

MAX_BUTTONS = 3
MAX_LIST_ITEMS = 10
MAX_BUTTON_TITLE = 20
MAX_ITEM_TITLE = 24
MAX_ITEM_DESCRIPTION = 72
LIST_BUTTON = "Choose"


@dataclass(frozen=True)
class Template:
    """An approved WhatsApp template of the account."""

    content_sid: str
    name: str
    language: str
    category: str
    variables: dict[str, str]  # placeholder -> its sample value, e.g. {"1": "Ana"}
    content_type: str


def choices_request(body: str, choices: Sequence[dict[str, str]], *, friendly_name: str) -> dict[str, Any]:
    """The Content create request for ``choices`` (``[{"id", "title", "description"?}]``):
    quick-reply buttons for up to three, a list picker for up to ten.

    Raises ``ValueError`` for more than ten choices (they go as a numbered text instead).
    """
    if not 1 <= len(choices) <= MAX_LIST_ITEMS:
        raise ValueError(f"choices: expected 1 to {MAX_LIST_ITEMS}, got {len(choices)}")
    if len(choices) <= MAX_BUTTONS and all(len(c["title"]) <= MAX_BUTTON_TITLE for c in choices):
        actions = [{"type": "QUICK_REPLY", "title": c["title"], "id": c["id"]} for c in choices]
        types: dict[str, Any] = {"twilio/quick-reply": {"body": body, "actions": actions}}
    else:
        items = [
            {"id": c["id"], "item": c["title"][:MAX_ITEM_TITLE], "description": (c.get("description") or "")[:MAX_ITEM_DESCRIPTION]}
            for c in choices
        ]
        types = {"twilio/list-picker": {"body": body, "button": LIST_BUTTON, "items": items}}
    return {"friendly_name": friendly_name, "language": "en", "variables": {}, "types": types}


async def create_choices_content(client: Client, body: str, choices: Sequence[dict[str, str]], *, friendly_name: str) -> str:
    """Create the content for ``choices`` and return its Content SID (HX...)."""
    request = ContentList.ContentCreateRequest(choices_request(body, choices, friendly_name=friendly_name))
    try:
        content = await client.content.v1.contents.create_async(request)
    except TwilioException as exc:
        raise _send_error(exc) from exc
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise SendError(f"could not reach Twilio's Content API ({type(exc).__name__})", transient=True, code="content_api") from None
    return str(content.sid)


async def list_templates(client: Client) -> list[Template]:
    """The account's templates WhatsApp approved, newest first."""
    try:
        records = await client.content.v1.content_and_approvals.list_async(page_size=200)
    except TwilioException as exc:
        raise _send_error(exc) from exc
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        raise SendError(f"could not reach Twilio's Content API ({type(exc).__name__})", transient=True, code="content_api") from None
    templates = []
    for record in records:
        approval = record.approval_requests or {}
        if str(approval.get("status") or "").lower() != "approved" or not record.sid:
            continue
        templates.append(Template(
            content_sid=str(record.sid),
            name=str(approval.get("name") or record.friendly_name or ""),
            language=str(record.language or ""),
            category=str(approval.get("category") or ""),
            variables={str(k): str(v) for k, v in (record.variables or {}).items()},
            content_type=str(approval.get("content_type") or next(iter(record.types or {}), "")),
        ))
    return templates
