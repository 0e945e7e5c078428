"""Inline Markdown scanning: the tokens of one line, and which emphasis runs pair up.

Everything that shapes a reply (rendering it in a dialect, splitting it into parts) needs the
same view of a line: which stretches are protected (code spans, links, images, autolinks,
bare URLs, escapes), which are plain text, and which ``*``, ``_`` and ``~`` runs open or close
emphasis. This module computes that view once, in time linear in the line's length.

Emphasis follows CommonMark's delimiter rules with one deliberate difference: a ``*`` or
``~`` run next to an ASCII letter or digit neither opens nor closes emphasis (CommonMark lets
``*`` work inside words). That keeps ``2*3*4`` and ``a*b*c`` intact while ``中文**粗体**中文``
still becomes bold. ``_`` never works inside a word (``snake_case_name`` is safe), as in
CommonMark. Emphasis never crosses a line break, and text inside code spans, code blocks and
URLs is never touched.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

# A link destination: <anything> or a run without spaces that may hold one level of
# balanced parentheses (Wikipedia-style URLs).
_DEST = r"<[^<>\n]*>|[^\s()<>]*(?:\([^\s()<>]*\)[^\s()<>]*)*"
_TITLE = r"""(?:\s+(?:"[^"\n]*"|'[^'\n]*'))?"""
_LINK = re.compile(rf"\[((?:[^\[\]\\\n]|\\.|\[[^\[\]\n]*\])*)\]\(\s*({_DEST}){_TITLE}\s*\)")
_IMAGE = re.compile(rf"!\[([^\[\]\n]*)\]\(\s*({_DEST}){_TITLE}\s*\)")
_AUTOLINK = re.compile(r"<((?:[Hh][Tt][Tt][Pp][Ss]?|[Ff][Tt][Pp])://[^\s<>]+|mailto:[^\s<>]+|[\w.+-]+@[\w-]+(?:\.[\w-]+)+)>")
_BR = re.compile(r"<br\s*/?>", re.IGNORECASE)
# Only these characters can start a token; everything between them is plain text. Searching
# for a character class is fast in `re`, unlike one big alternation tried at every position.
SPECIAL = re.compile(r"[\\`<!\[*_~]")
_RUNS = {char: re.compile(re.escape(char) + "+") for char in "`*_~"}
_URL_BODY = re.compile(r"[^\s<>]*")
_URL_SCHEMES = frozenset({"http", "https", "ftp"})
_URL_TRAILING = frozenset(".,;:!?'\"*_~")
_ASCII_PUNCT = frozenset("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")
_CODE_CLOSERS: dict[int, re.Pattern[str]] = {}


def code_closer(ticks: int) -> re.Pattern[str]:
    """A backtick run of exactly ``ticks`` backticks (what closes a code span)."""
    pattern = _CODE_CLOSERS.get(ticks)
    if pattern is None:
        pattern = _CODE_CLOSERS[ticks] = re.compile(rf"(?<!`)`{{{ticks}}}(?!`)")
    return pattern


def _url_end(text: str, start: int, end: int) -> int:
    """Where a bare URL really ends: trailing punctuation and unbalanced brackets belong to
    the sentence (``(see https://x.com/a).``), not to the URL."""
    while end > start:
        last = text[end - 1]
        if last in _URL_TRAILING:
            end -= 1
        elif last == ")" and text.count("(", start, end) < text.count(")", start, end):
            end -= 1
        elif last == "]" and text.count("[", start, end) < text.count("]", start, end):
            end -= 1
        else:
            break
    return end


def _find_urls(text: str, lo: int, hi: int) -> list[tuple[int, int]]:
    """Bare URLs (``http(s)://``, ``ftp://``, ``www.``) in ``text[lo:hi]``, found from the
    literal ``://`` and ``www.`` with ``str.find`` (fast) and checked around them."""
    found: list[tuple[int, int]] = []
    for needle in ("://", "www."):
        at = text.find(needle, lo, hi)
        while at >= 0:
            start = at
            if needle == "://":
                while start > lo and start > at - 5 and text[start - 1].isascii() and text[start - 1].isalpha():
                    start -= 1
                ok = text[start:at].lower() in _URL_SCHEMES and at + 3 < hi and not text[at + 3].isspace()
            else:
                ok = at + 4 < hi and not text[at + 4].isspace()
            if ok and start > lo and (text[start - 1].isalnum() or text[start - 1] in "_/"):
                ok = False
            if ok:
                body = _URL_BODY.match(text, at, hi)
                assert body is not None  # `*`: it matches anywhere
                end = _url_end(text, start, body.end())
                if end > at + len(needle):
                    found.append((start, end))
                    at = text.find(needle, end, hi)
                    continue
            at = text.find(needle, at + 1, hi)
    if len(found) > 1:
        found.sort()
        merged = [found[0]]
        for start, end in found[1:]:  # `https://www.x` is found twice
            if start < merged[-1][1]:
                continue
            merged.append((start, end))
        found = merged
    return found


def _is_punct(char: str) -> bool:
    return not char.isalnum() and not char.isspace()


def _flanking(char: str, before: str, after: str) -> tuple[bool, bool]:
    """Whether a ``char`` delimiter run between ``before`` and ``after`` can open / close
    emphasis (CommonMark's flanking rules plus the word rule in the module docstring)."""
    left = not after.isspace() and (not _is_punct(after) or before.isspace() or _is_punct(before))
    right = not before.isspace() and (not _is_punct(before) or after.isspace() or _is_punct(after))
    # `_` never works inside a word; `*`/`~` not next to ASCII letters or digits (2*3*4).
    if char == "_":
        blocked_before, blocked_after = before.isalnum(), after.isalnum()
    else:
        blocked_before = before.isascii() and before.isalnum()
        blocked_after = after.isascii() and after.isalnum()
    return left and not blocked_before, right and not blocked_after


class Delimiter:
    """A run of ``*``, ``_`` or ``~`` that may open and/or close emphasis."""

    __slots__ = ("char", "start", "end", "rem", "can_open", "can_close", "opens", "closes", "used_open", "used_close")

    def __init__(self, char: str, start: int, end: int, can_open: bool, can_close: bool) -> None:
        self.char = char
        self.start = start
        self.end = end
        self.rem = end - start  # characters not (yet) used as markers
        self.can_open = can_open
        self.can_close = can_close
        self.opens: list[str] = []  # span kinds opened here, outermost first
        self.closes: list[str] = []  # span kinds closed here, innermost first
        self.used_open = 0
        self.used_close = 0

    @property
    def stack_key(self) -> str:
        # `~` and `~~` only pair with a run of the same length (GFM).
        return self.char if self.char != "~" else "~" * (self.end - self.start)


# (kind, start, end, payload); kinds: text, esc, code, br, img, link, auto, url
InlineItem = tuple[str, int, int, Any] | Delimiter


def scan_inline(text: str, lo: int, hi: int) -> list[InlineItem]:
    """Tokenise ``text[lo:hi]`` (one line, or a link's text) into protected tokens (code
    spans, links, images, autolinks, bare URLs, escapes), plain text and emphasis delimiter
    runs. Positions are absolute indexes into ``text``."""
    items: list[InlineItem] = []
    if SPECIAL.search(text, lo, hi) is None:
        return [("text", lo, hi, None)] if hi > lo else items
    urls = _find_urls(text, lo, hi) if text.find("://", lo, hi) >= 0 or text.find("www.", lo, hi) >= 0 else []
    url_index, url_count = 0, len(urls)
    special = SPECIAL.search
    pos = text_from = lo
    while True:
        while url_index < url_count and urls[url_index][0] < pos:
            url_index += 1  # inside a token already taken (a link's destination, code)
        stop = urls[url_index][0] if url_index < url_count else hi
        match = special(text, pos, stop)
        if match is None:
            if url_index >= url_count:
                break
            url_start, url_end = urls[url_index]
            if url_start > text_from:
                items.append(("text", text_from, url_start, None))
            items.append(("url", url_start, url_end, None))
            pos = text_from = url_end
            continue
        start = match.start()
        char = text[start]
        item: InlineItem | None = None
        end = start + 1
        if char == "\\":
            if end < hi and text[end] in _ASCII_PUNCT:
                item, end = ("esc", start, end + 1, None), end + 1
        elif char == "`":
            run = _RUNS["`"].match(text, start, hi)
            assert run is not None  # a backtick is at `start`
            end = run.end()
            ticks = end - start
            closer = code_closer(ticks).search(text, end, hi)
            if closer is not None:
                end = closer.end()
                item = ("code", start, end, ticks)
        elif char == "<":
            found = _BR.match(text, start, hi)
            if found:
                item, end = ("br", start, found.end(), None), found.end()
            else:
                found = _AUTOLINK.match(text, start, hi)
                if found:
                    item, end = ("auto", start, found.end(), found.group(1)), found.end()
        elif char == "!":
            found = _IMAGE.match(text, start, hi)
            if found:
                end = found.end()
                item = ("img", start, end, (found.start(1), found.end(1), _unbracket(found.group(2))))
        elif char == "[":
            found = _LINK.match(text, start, hi)
            if found:
                end = found.end()
                item = ("link", start, end, (found.start(1), found.end(1), _unbracket(found.group(2))))
        else:  # * _ ~
            run = _RUNS[char].match(text, start, hi)
            assert run is not None  # `char` is at `start`
            end = run.end()
            if char != "~" or end - start <= 2:
                can_open, can_close = _flanking(char, text[start - 1] if start > lo else " ", text[end] if end < hi else " ")
                if can_open or can_close:  # inert runs (snake_case, 2*3*4) stay plain text
                    item = Delimiter(char, start, end, can_open, can_close)
        if item is not None:
            if start > text_from:
                items.append(("text", text_from, start, None))
            items.append(item)
            text_from = end
        pos = end
    if hi > text_from:
        items.append(("text", text_from, hi, None))
    return items


def _unbracket(url: str) -> str:
    return url[1:-1] if url.startswith("<") and url.endswith(">") else url


def match_emphasis(items: Sequence[InlineItem]) -> list[tuple[str, int, int, int, int]]:
    """Pair delimiter runs (CommonMark's delimiter-stack algorithm, simplified).

    Marks each run with the span kinds it opens/closes and returns the spans as
    ``(kind, start, content_start, content_end, end)``. Openers between a matched pair are
    discarded, so spans never cross. Each run is pushed and popped at most once: linear.
    """
    stacks: dict[str, list[tuple[int, Delimiter]]] = {"*": [], "_": [], "~": [], "~~": []}
    spans: list[tuple[str, int, int, int, int]] = []
    order = 0
    for item in items:
        if not isinstance(item, Delimiter):
            continue
        order += 1
        delim = item
        if delim.can_close:
            stack = stacks[delim.stack_key]
            while delim.rem > 0 and stack:
                opener_order, opener = stack[-1]
                for other in stacks.values():  # openers after the match can no longer close
                    while other and other[-1][0] > opener_order:
                        other.pop()
                if delim.char == "~":
                    use, kind = opener.rem, "strike"
                elif opener.rem >= 2 and delim.rem >= 2:
                    use, kind = 2, "strong"
                else:
                    use, kind = 1, "em"
                opener.rem -= use
                delim.rem -= use
                opener.opens.insert(0, kind)
                delim.closes.append(kind)
                content_start = opener.end - opener.used_open
                content_end = delim.start + delim.used_close
                spans.append((kind, content_start - use, content_start, content_end, content_end + use))
                opener.used_open += use
                delim.used_close += use
                if opener.rem == 0:
                    stack.pop()
        if delim.can_open and delim.rem > 0:
            stacks[delim.stack_key].append((order, delim))
    return spans


def require_str(value: object, name: str) -> None:
    """Reject a non-``str`` argument with a message naming it (the public functions' guard)."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str; got {type(value).__name__}")
