"""The respond node's entry point: a model's reply, shaped for one channel.

:func:`shape_reply` is the one call the agent graph makes: render the reply in the channel's
dialect, add its sources, split it to the channel's length limit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from callable_agents.core.reply.citations import sources_block
from callable_agents.core.reply.dialects import Dialect, as_dialect
from callable_agents.core.reply.rendering import format_for
from callable_agents.core.reply.splitting import MIN_SPLIT_LIMIT, LengthUnit, split_message


def shape_reply(
    text: str,
    *,
    dialect: Dialect | str,
    max_length: int | None,
    citations: Sequence[Mapping[str, Any]] | None = None,
    show_citations: bool = True,
    length_unit: LengthUnit = "code_points",
) -> list[str]:
    """Shape a model reply for a channel: format it for ``dialect`` (a :class:`Dialect`, or
    core's ``starred``, ``markdown`` or ``plain`` by name), append a short "Sources:" section
    (when ``show_citations`` and some citation has a ``url``), then split into parts of at
    most ``max_length`` characters (``None``: one part), counted in ``length_unit`` (code
    points, or UTF-16 units for a provider that counts them).

    Citations are mappings with ``url`` and optional ``title``; they are deduplicated by
    URL and only ``http(s)``/``mailto`` URLs are shown. An empty reply gives ``[]``.
    """
    resolved = as_dialect(dialect)
    if max_length is not None and (isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < MIN_SPLIT_LIMIT):
        raise ValueError(f"max_length must be None or an integer >= {MIN_SPLIT_LIMIT}; got {max_length!r}")
    if citations is not None and (isinstance(citations, (str, bytes)) or not isinstance(citations, Sequence)):
        raise TypeError(f"citations must be a list of mappings or None; got {type(citations).__name__}")
    body = format_for(text, resolved)
    sources = sources_block(citations, resolved) if citations and show_citations else ""
    shaped = f"{body}\n\n{sources}" if body and sources else body or sources
    if max_length is None:
        return [shaped] if shaped else []
    return split_message(shaped, max_length, length_unit)
