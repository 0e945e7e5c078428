"""What the inbox's pages (:mod:`.conversations`) and their live stream
(:mod:`.conversations_live`) both show: the labels of statuses, authors and deliveries, the
list's filters as read from and written to a query string, and a failed delivery in words.
"""

from __future__ import annotations

from urllib.parse import urlencode

from starlette.requests import Request

from callable_agents.core.conversation import inbox
from callable_agents.core.runtime import Runtime
from callable_agents.core.store.users import SignedIn

STATUS_LABELS = {"bot": "Agent", "human": "Person", "closed": "Closed"}
AUTHOR_LABELS = {"customer": "Customer", "agent": "Agent", "human": "Person", "system": "Notice"}
DELIVERY_LABELS = {
    "received": "",
    "pending": "Sending",
    "queued": "Queued",
    "sending": "Sending",
    "accepted": "Sent",
    "sent": "Sent",
    "delivered": "Delivered",
    "read": "Read",
    "failed": "Failed",
    "undelivered": "Not delivered",
}


def filters_of(request: Request, viewer: SignedIn) -> inbox.InboxFilters:
    """The list's filters from the query string (bad values are a 400 naming the field)."""
    params = request.query_params
    status = params.get("status") or None
    return inbox.InboxFilters(
        status=status,
        channel_id=params.get("channel") or None,
        assignee_id=viewer.user_id if params.get("mine") in ("1", "on") else None,
        needs_person=params.get("needs") in ("1", "on"),
        search=(params.get("q") or "").strip(),
    )


def query_of(filters: inbox.InboxFilters, viewer: SignedIn, **extra: str) -> str:
    values: dict[str, str] = {}
    if filters.status:
        values["status"] = filters.status
    if filters.channel_id:
        values["channel"] = filters.channel_id
    if filters.assignee_id == viewer.user_id and filters.assignee_id:
        values["mine"] = "1"
    if filters.needs_person:
        values["needs"] = "1"
    if filters.search:
        values["q"] = filters.search
    values.update(extra)
    return urlencode(values)


def delivery_error_text(runtime: Runtime, channel_kind: str, code: str | None, stored: str | None) -> str:
    """A failed delivery in words: the channel type's explanation of its provider's code, else what was stored."""
    if code:
        channel_type = runtime.plugins.channels.types.get(channel_kind)
        describe = channel_type.describe_delivery_error if channel_type else None
        words = describe(code) if describe else None
        if words:
            return f"{words} (error {code})"
        return f"{stored or 'the provider refused it'} (error {code})"
    return stored or ""
