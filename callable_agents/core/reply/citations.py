"""Citations: the short "Sources:" block under an answer, written in the channel's dialect.

Retrieval hands the reply the passages it used, each with a title and a URL. Readers get one
line per distinct link, and only links a chat window may safely render (``http(s)`` and
``mailto``: a ``javascript:`` or ``data:`` URL from a crawled page must never become a link).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from callable_agents.core.reply.dialects import Dialect

_SAFE_URL = re.compile(r"(?:https?://|mailto:)\S+$", re.IGNORECASE)
_TITLE_MAX = 100


def sources_block(citations: Sequence[Mapping[str, Any]], dialect: Dialect) -> str:
    """The "Sources:" block: one line per distinct http(s)/mailto URL, first title wins.

    Channels that render Markdown get ``- [title](url)`` lines; the others ``- title: url``
    under a heading in the dialect's emphasis. No usable URL gives ``""``.
    """
    seen: set[str] = set()
    lines: list[str] = []
    markdown = dialect.markup is None
    for index, citation in enumerate(citations):
        if not isinstance(citation, Mapping):
            raise TypeError(f"citations[{index}] must be a mapping with 'url' and 'title'; got {type(citation).__name__}")
        url = citation.get("url")
        if url is None:
            continue
        if not isinstance(url, str):
            raise TypeError(f"citations[{index}].url must be a string; got {type(url).__name__}")
        url = url.strip()
        if not url or not _SAFE_URL.match(url) or url in seen:
            continue  # no link, or a scheme (javascript:, data:) a chat window must not render
        seen.add(url)
        raw_title = citation.get("title")
        title = " ".join(str(raw_title).split()) if raw_title is not None else ""
        if len(title) > _TITLE_MAX:
            title = title[: _TITLE_MAX - 1].rstrip() + "…"
        if markdown:
            label = (title or url).replace("\\", "\\\\").replace("[", "\\[").replace("]", "\\]")
            target = url.replace("(", "%28").replace(")", "%29")  # a bare ")" would end the link
            lines.append(f"- [{label}]({target})")
        else:
            lines.append(f"- {title}: {url}" if title and title != url else f"- {url}")
    if not lines:
        return ""
    emphasis = dialect.markup.em if dialect.markup is not None else ""
    return "\n".join([f"{emphasis}Sources:{emphasis}", *lines])
