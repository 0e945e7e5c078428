"""Reply shaping for a channel: dialects, rendering, splitting, citations.

Chat models write Markdown; channels show something else. The respond node calls
:func:`shape_reply` once per reply, and everything here is pure, stdlib-only and roughly
linear in the length of the text. One concept a module, in the order a reply meets them:

- :mod:`.inline` — inline Markdown scanning: a line's protected tokens (code, links, URLs,
  escapes) and which emphasis runs pair up. Shared by rendering and splitting.
- :mod:`.dialects` — :class:`Dialect` and :class:`Markup`, the data a channel declares in its
  capabilities; core's ``MARKDOWN``, ``PLAIN`` and ``STARRED`` (single-asterisk bold).
- :mod:`.rendering` — a reply in a dialect: :func:`format_for`, :func:`convert`,
  :func:`to_starred`, :func:`to_plain`, :func:`shape_markdown`.
- :mod:`.citations` — the "Sources:" block under an answer.
- :mod:`.splitting` — :func:`split_message`: parts within a length limit, never cut inside a
  word, a URL or a formatting span.
- :mod:`.shaping` — :func:`shape_reply`, the entry point: render, cite, split.

Core names no channel here: a channel plugin picks a dialect (by name, or a :class:`Dialect`
it builds from :class:`Markup`) in its ``ChannelCapabilities.formatting``.
"""

from __future__ import annotations

from callable_agents.core.reply.citations import sources_block
from callable_agents.core.reply.dialects import (
    CORE_DIALECTS,
    MARKDOWN,
    PLAIN,
    PLAIN_MARKUP,
    STARRED,
    STARRED_MARKUP,
    Dialect,
    DialectName,
    Markup,
    as_dialect,
)
from callable_agents.core.reply.rendering import convert, format_for, shape_markdown, to_plain, to_starred
from callable_agents.core.reply.shaping import shape_reply
from callable_agents.core.reply.splitting import LENGTH_UNITS, MIN_SPLIT_LIMIT, LengthUnit, split_message, utf16_length

__all__ = [
    "CORE_DIALECTS",
    "LENGTH_UNITS",
    "MARKDOWN",
    "MIN_SPLIT_LIMIT",
    "PLAIN",
    "PLAIN_MARKUP",
    "STARRED",
    "STARRED_MARKUP",
    "Dialect",
    "LengthUnit",
    "DialectName",
    "Markup",
    "as_dialect",
    "convert",
    "format_for",
    "shape_markdown",
    "shape_reply",
    "sources_block",
    "split_message",
    "to_plain",
    "to_starred",
    "utf16_length",
]
