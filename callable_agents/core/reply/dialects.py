"""Formatting dialects: how a channel writes what a chat model wrote in Markdown.

A channel names its dialect in its capabilities (``ChannelCapabilities.formatting``): one of
core's dialects by name, or a :class:`Dialect` it builds itself. Core knows three:

* ``markdown`` — the channel renders Markdown itself: replies are only tidied;
* ``plain`` — the channel shows text as it is: every marker is stripped;
* ``starred`` — the single-asterisk style of messaging apps: ``*bold*``, ``_italic_``,
  ``~strike~``, single-backtick inline code and ```` ``` ```` blocks, ``> `` quotes; the
  rest of Markdown (``**x**``, ``# heading``, ``[t](u)``, tables, ``---``) is rewritten
  because such apps would show it as literal characters.

A dialect is data, not code: a :class:`Markup` says what the converter writes for each
construct, so a plugin with another app's conventions writes
``Dialect("mine", Markup(strong="*", em="/"))`` rather than a renderer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

DialectName = Literal["starred", "markdown", "plain"]


@dataclass(frozen=True)
class Markup:
    """What a converted reply writes for each construct; all empty is plain text."""

    strong: str = ""  # around **strong** text and headings
    em: str = ""  # around *emphasis*
    strike: str = ""  # around ~~struck~~ text
    quote: str = ""  # before a quoted line ("> "); empty drops the quote marker
    code: bool = False  # keep inline code (in single backticks) and fenced blocks (in ```)
    # The emphasis markers by span kind, looked up per delimiter run while rendering.
    markers: Mapping[str, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "markers", {"strong": self.strong, "em": self.em, "strike": self.strike})


@dataclass(frozen=True)
class Dialect:
    """A channel's formatting dialect.

    ``markup=None`` means the channel renders Markdown: the reply is tidied, not converted,
    and its sources are written as Markdown links.
    """

    name: str
    markup: Markup | None = None


PLAIN_MARKUP = Markup()
STARRED_MARKUP = Markup(strong="*", em="_", strike="~", quote="> ", code=True)

MARKDOWN = Dialect("markdown")
PLAIN = Dialect("plain", PLAIN_MARKUP)
STARRED = Dialect("starred", STARRED_MARKUP)

CORE_DIALECTS: Mapping[str, Dialect] = {dialect.name: dialect for dialect in (STARRED, MARKDOWN, PLAIN)}


def as_dialect(value: Dialect | str) -> Dialect:
    """The :class:`Dialect` itself, or core's dialect of that name."""
    if isinstance(value, Dialect):
        return value
    found = CORE_DIALECTS.get(value) if isinstance(value, str) else None
    if found is None:
        raise ValueError(f"dialect must be one of {', '.join(CORE_DIALECTS)}, or a Dialect; got {value!r}")
    return found
