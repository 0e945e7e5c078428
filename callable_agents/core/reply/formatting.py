"""Shaping a reply for a channel: Markdown dialects and safe splitting.

Chat models write Markdown. WhatsApp renders a small dialect of its own (``*bold*``,
``_italic_``, ``~strike~``, ```` ```monospace``` ````, inline `` `code` ``, ``- `` bullets,
``1.`` lists and ``>`` quotes) and shows the rest (``**x**``, ``# heading``, ``[t](u)``,
tables, ``---``) as literal characters. SMS-like channels want plain text, and the web
widget wants tidy Markdown. Twilio also caps a message body at 1600 characters, so long
replies are sent as several messages, split where a reader would pause and never inside a
word, a URL or a formatting span.

Everything here is pure, stdlib-only and roughly linear in the length of the text, because
it runs in the agent graph's ``respond`` node on every reply.

Emphasis follows CommonMark's delimiter rules with one deliberate difference: a ``*`` or
``~`` run next to an ASCII letter or digit neither opens nor closes emphasis (CommonMark lets
``*`` work inside words). That keeps ``2*3*4`` and ``a*b*c`` intact while ``中文**粗体**中文``
still becomes bold. ``_`` never works inside a word (``snake_case_name`` is safe), as in
CommonMark. Emphasis never crosses a line break, and text inside code spans, code blocks and
URLs is never touched.
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

Dialect = Literal["whatsapp", "markdown", "plain"]
DIALECTS: tuple[str, ...] = get_args(Dialect)

MIN_SPLIT_LIMIT = 20  # below this even a short sentence plus re-opened markers cannot fit

# ---------------------------------------------------------------------------------------
# Inline scanning (shared by the converters and the splitter)
# ---------------------------------------------------------------------------------------

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
_SPECIAL = re.compile(r"[\\`<!\[*_~]")
_RUNS = {char: re.compile(re.escape(char) + "+") for char in "`*_~"}
_URL_BODY = re.compile(r"[^\s<>]*")
_URL_SCHEMES = frozenset({"http", "https", "ftp"})
_URL_TRAILING = frozenset(".,;:!?'\"*_~")
_ASCII_PUNCT = frozenset("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")
_CODE_CLOSERS: dict[int, re.Pattern[str]] = {}


def _code_closer(ticks: int) -> re.Pattern[str]:
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
                end = _url_end(text, start, _URL_BODY.match(text, at, hi).end())
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


class _Delim:
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
_Item = tuple[str, int, int, Any] | _Delim


def _scan_inline(text: str, lo: int, hi: int) -> list[_Item]:
    """Tokenise ``text[lo:hi]`` (one line, or a link's text) into protected tokens (code
    spans, links, images, autolinks, bare URLs, escapes), plain text and emphasis delimiter
    runs. Positions are absolute indexes into ``text``."""
    items: list[_Item] = []
    if _SPECIAL.search(text, lo, hi) is None:
        return [("text", lo, hi, None)] if hi > lo else items
    urls = _find_urls(text, lo, hi) if text.find("://", lo, hi) >= 0 or text.find("www.", lo, hi) >= 0 else []
    url_index, url_count = 0, len(urls)
    special = _SPECIAL.search
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
        item: _Item | None = None
        end = start + 1
        if char == "\\":
            if end < hi and text[end] in _ASCII_PUNCT:
                item, end = ("esc", start, end + 1, None), end + 1
        elif char == "`":
            end = _RUNS["`"].match(text, start, hi).end()
            ticks = end - start
            closer = _code_closer(ticks).search(text, end, hi)
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
            end = _RUNS[char].match(text, start, hi).end()
            if char != "~" or end - start <= 2:
                can_open, can_close = _flanking(char, text[start - 1] if start > lo else " ", text[end] if end < hi else " ")
                if can_open or can_close:  # inert runs (snake_case, 2*3*4) stay plain text
                    item = _Delim(char, start, end, can_open, can_close)
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


def _match_emphasis(items: Sequence[_Item]) -> list[tuple[str, int, int, int, int]]:
    """Pair delimiter runs (CommonMark's delimiter-stack algorithm, simplified).

    Marks each run with the span kinds it opens/closes and returns the spans as
    ``(kind, start, content_start, content_end, end)``. Openers between a matched pair are
    discarded, so spans never cross. Each run is pushed and popped at most once: linear.
    """
    stacks: dict[str, list[tuple[int, _Delim]]] = {"*": [], "_": [], "~": [], "~~": []}
    spans: list[tuple[str, int, int, int, int]] = []
    order = 0
    for item in items:
        if not isinstance(item, _Delim):
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


# ---------------------------------------------------------------------------------------
# Conversion (Markdown -> WhatsApp / plain)
# ---------------------------------------------------------------------------------------

_MARKERS: dict[str, dict[str, str]] = {
    "whatsapp": {"strong": "*", "em": "_", "strike": "~"},
    "plain": {"strong": "", "em": "", "strike": ""},
}

# Fences may be indented any amount (models nest code blocks in list items).
_FENCE_OPEN = re.compile(r"([ \t]*)(?:(`{3,})[^`\n]*|(~{3,})[^\n]*)$")
_FENCE_CLOSE = re.compile(r"[ \t]*(`{3,}|~{3,})[ \t]*$")
_ATX = re.compile(r" {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_SETEXT = re.compile(r" {0,3}(?:=+|-+)[ \t]*$")
_RULE = re.compile(r" {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$")
_BULLET = re.compile(r"([ \t]*)[*+-](?:[ \t]+|$)")
_QUOTE = re.compile(r" {0,3}>[ \t]?(?:>[ \t]?)*")
_TABLE_DELIM = re.compile(r"[ \t]*\|?[ \t]*:?-+:?[ \t]*(?:\|[ \t]*:?-+:?[ \t]*)*\|?[ \t]*$")
_CELL_SPLIT = re.compile(r"(?<!\\)\|")
_CELL_OR_CODE = re.compile(r"(?<!\\)\||`+")
_NEWLINES = re.compile(r"\r\n?")
_BLOCK_STARTS = frozenset(">#-*_+")


def _render_inline(text: str, lo: int, hi: int, dialect: str, br: str = "\n") -> str:
    """Render one line (or a table cell / link text) of Markdown in ``dialect``."""
    if _SPECIAL.search(text, lo, hi) is None:
        return text[lo:hi]  # nothing to convert: the common case for prose
    items = _scan_inline(text, lo, hi)
    _match_emphasis(items)
    markers = _MARKERS[dialect]
    out: list[str] = []
    for item in items:
        if isinstance(item, _Delim):
            for kind in item.closes:
                out.append(markers[kind])
            out.append(item.char * item.rem)
            for kind in item.opens:
                out.append(markers[kind])
            continue
        kind, start, end, payload = item
        if kind == "text" or kind == "url":
            out.append(text[start:end])
        elif kind == "esc":
            out.append(text[end - 1])
        elif kind == "code":
            out.append(_render_code_span(text[start:end], payload, dialect))
        elif kind == "br":
            out.append(br)
        elif kind == "img":
            alt_start, alt_end, url = payload
            alt = " ".join(text[alt_start:alt_end].split())
            out.append(f"{alt}: {url}" if alt else url)
        elif kind == "link":
            label_start, label_end, url = payload
            label = _render_inline(text, label_start, label_end, dialect, " ").strip()
            bare = label if dialect == "plain" else _render_inline(text, label_start, label_end, "plain", " ").strip()
            if not label or bare == url or bare == url.removeprefix("mailto:"):
                out.append(url)
            else:
                out.append(f"{label} ({url})")
        elif kind == "auto":
            out.append(payload.removeprefix("mailto:"))
    return "".join(out)


def _render_code_span(raw: str, ticks: int, dialect: str) -> str:
    content = raw[ticks:-ticks]
    if len(content) > 2 and content[0] == " " and content[-1] == " " and content.strip():
        content = content[1:-1]  # CommonMark: one padding space each side is not content
    if dialect == "plain":
        return content
    if ticks > 1 and "`" not in content:
        return f"`{content}`"  # WhatsApp only knows single-backtick inline code
    return raw


def _split_cells(line: str) -> list[str]:
    row = line.strip()
    if row.startswith("|"):
        row = row[1:]
    if row.endswith("|") and not row.endswith("\\|"):
        row = row[:-1]
    if "`" not in row:
        return [cell.strip() for cell in _CELL_SPLIT.split(row)]
    # A pipe inside a code span is content (models write `a|b` without escaping it).
    cells: list[str] = []
    cell_start = position = 0
    while True:
        match = _CELL_OR_CODE.search(row, position)
        if match is None:
            break
        if match.group() == "|":
            cells.append(row[cell_start : match.start()])
            cell_start = position = match.end()
            continue
        closer = _code_closer(len(match.group())).search(row, match.end())
        position = closer.end() if closer else match.end()
    cells.append(row[cell_start:])
    return [cell.strip() for cell in cells]


def _table_rows(header: str, body: Sequence[str], dialect: str) -> list[str]:
    """Tables become one bullet per row: ``- name: value, other: value``."""
    names = [_render_inline(cell, 0, len(cell), "plain", " ").strip() for cell in _split_cells(header)]
    rows: list[str] = []
    for line in body:
        pairs = []
        for index, cell in enumerate(_split_cells(line)):
            value = _render_inline(cell, 0, len(cell), dialect, " ").strip()
            if not value:
                continue
            name = names[index] if index < len(names) else ""
            pairs.append(f"{name}: {value}" if name else value)
        if pairs:
            rows.append("- " + ", ".join(pairs))
    if not rows and any(names):
        rows.append("- " + ", ".join(name for name in names if name))
    return rows


def _heading(content: str, dialect: str) -> str:
    title = " ".join(_render_inline(content, 0, len(content), "plain", " ").split())
    if not title:
        return ""
    return f"*{title}*" if dialect == "whatsapp" else title


def _convert_line(line: str, dialect: str) -> tuple[str | None, bool]:
    """Convert one non-blank line outside code blocks and tables.

    Returns the converted line (``None`` to drop it) and whether it was paragraph text (a
    candidate for a setext heading underline on the next line).
    """
    first = line.lstrip()[:1]
    if first not in _BLOCK_STARTS:  # most lines: plain paragraph text
        return _render_inline(line, 0, len(line), dialect).rstrip(), True
    quote = _QUOTE.match(line) if first == ">" else None
    if quote:
        inner, _ = _convert_line(line[quote.end() :], dialect)
        if inner is None:
            inner = ""
        return (f"> {inner}".rstrip() if dialect == "whatsapp" else inner), False
    heading = _ATX.match(line)
    if heading:
        title = _heading(heading.group(2) or "", dialect)
        return (title or None), False
    if _RULE.match(line):
        return None, False
    bullet = _BULLET.match(line)
    if bullet:
        rest = _render_inline(line, bullet.end(), len(line), dialect).rstrip()
        return f"{bullet.group(1)}- {rest}".rstrip(), False
    return _render_inline(line, 0, len(line), dialect).rstrip(), True


def _convert(markdown: str, dialect: str) -> str:
    """Block-level pass shared by :func:`to_whatsapp` and :func:`to_plain`."""
    lines = _NEWLINES.sub("\n", markdown).split("\n")
    out: list[str] = []
    previous_was_paragraph = False
    index, count = 0, len(lines)

    def blank() -> None:
        if out and out[-1] != "":
            out.append("")

    while index < count:
        line = lines[index]
        if not line.strip():
            blank()
            previous_was_paragraph = False
            index += 1
            continue
        fence = _FENCE_OPEN.match(line) if line.lstrip()[:1] in ("`", "~") else None
        if fence:
            indent = len(fence.group(1))
            marker = fence.group(2) or fence.group(3)
            body: list[str] = []
            index += 1
            while index < count:
                closing = _FENCE_CLOSE.match(lines[index])
                if closing and closing.group(1)[0] == marker[0] and len(closing.group(1)) >= len(marker):
                    index += 1
                    break
                code_line = lines[index]
                strip = min(indent, len(code_line) - len(code_line.lstrip(" ")))
                body.append(code_line[strip:])
                index += 1
            if dialect == "plain":
                out.extend(body)
            else:
                out.append("```")
                out.extend(body)
                out.append("```")
            previous_was_paragraph = False
            continue
        if previous_was_paragraph and _SETEXT.match(line):
            title = _heading(lines[index - 1].strip(), dialect)
            if title:
                out[-1] = title
            else:
                out.pop()
            previous_was_paragraph = False
            index += 1
            continue
        if "|" in line and index + 1 < count and "|" in lines[index + 1] and _TABLE_DELIM.match(lines[index + 1]):
            body_start = index + 2
            end = body_start
            while end < count and lines[end].strip() and "|" in lines[end]:
                end += 1
            out.extend(_table_rows(line, lines[body_start:end], dialect))
            previous_was_paragraph = False
            index = end
            continue
        converted, previous_was_paragraph = _convert_line(line, dialect)
        if converted is None:
            previous_was_paragraph = False
        elif converted.strip():
            out.append(converted)
        else:
            blank()
        index += 1
    return "\n".join(out).strip("\n").rstrip()


def to_whatsapp(markdown: str) -> str:
    """Convert chat-model Markdown to WhatsApp's formatting dialect.

    ``**x**``/``__x__`` → ``*x*``; ``*x*``/``_x_`` → ``_x_``; ``~~x~~`` → ``~x~``; headings
    → ``*Heading*``; ``[text](url)`` → ``text (url)`` (just ``url`` when the text is the
    URL); ``![alt](url)`` → ``alt: url``; tables → one ``- column: value, …`` bullet per row;
    horizontal rules dropped; fenced code keeps its content inside ```` ``` ```` with the
    language tag dropped; inline code, numbered lists and ``>`` quotes kept; ``*``/``+``
    bullets → ``-``. Text in code and URLs is untouched, as are ``snake_case`` and
    ``2*3*4``. Runs of blank lines collapse to one.
    """
    _require_str(markdown, "markdown")
    return _convert(markdown, "whatsapp")


def to_plain(markdown: str) -> str:
    """Strip Markdown to plain text: emphasis markers, code fences and backticks and quote
    markers go; headings become their text; links become ``text (url)``; tables become
    ``- column: value`` bullets; bullets are written ``- ``; numbered lists stay."""
    _require_str(markdown, "markdown")
    return _convert(markdown, "plain")


def shape_markdown(markdown: str) -> str:
    """Tidy Markdown for channels that render it (web widget, chat page).

    Line endings become ``\\n``, the text is trimmed and runs of blank lines outside fenced
    code collapse to a single blank line. Everything else is left as the model wrote it.
    """
    _require_str(markdown, "markdown")
    lines = _NEWLINES.sub("\n", markdown).strip().split("\n")
    out: list[str] = []
    fence: str | None = None
    for line in lines:
        if fence is None:
            opening = _FENCE_OPEN.match(line)
            if opening:
                fence = opening.group(2) or opening.group(3)
            elif not line.strip():
                if out and out[-1] != "":
                    out.append("")
                continue
        else:
            closing = _FENCE_CLOSE.match(line)
            if closing and closing.group(1)[0] == fence[0] and len(closing.group(1)) >= len(fence):
                fence = None
        out.append(line)
    return "\n".join(out)


def format_for(text: str, dialect: Dialect) -> str:
    """Format a Markdown reply for a channel's ``dialect`` (``whatsapp``, ``markdown`` or
    ``plain``; see :class:`callable_agents.core.contracts.channels.ChannelCapabilities`)."""
    _require_str(text, "text")
    if dialect == "whatsapp":
        return to_whatsapp(text)
    if dialect == "plain":
        return to_plain(text)
    if dialect == "markdown":
        return shape_markdown(text)
    raise ValueError(f"dialect must be one of {', '.join(DIALECTS)}; got {dialect!r}")


# ---------------------------------------------------------------------------------------
# Splitting
# ---------------------------------------------------------------------------------------


@dataclass(eq=False)
class _Span:
    """A formatting span: ``open`` marker at ``[start, content_start)``, content, ``close``
    marker at ``[content_end, end)``. ``open``/``close`` are what gets written to close the
    span at a split and re-open it in the next part."""

    start: int
    content_start: int
    content_end: int
    end: int
    open: str
    close: str
    code_block: bool = False
    children: list[_Span] = field(default_factory=list)
    child_starts: list[int] = field(default_factory=list)


_WHITESPACE = re.compile(r"\s+")
_FENCE_OPEN_LINE = re.compile(r"^([ \t]*)(?:(`{3,})[^`\n]*|(~{3,})[^\n]*)$", re.MULTILINE)
_FENCE_CLOSE_LINE = re.compile(r"^[ \t]*(`{3,}|~{3,})[ \t]*$", re.MULTILINE)
_SENTENCE_END = frozenset(".!?…")
_SENTENCE_TRAILERS = frozenset(")]\"'”’»*_~`")
_PARAGRAPH, _LINE, _SENTENCE, _WORD = 3, 2, 1, 0


def _find_code_blocks(text: str) -> list[_Span]:
    """Fenced code blocks; an unclosed fence runs to the end of the text."""
    blocks: list[_Span] = []
    length = len(text)
    position = 0
    while True:
        opening = _FENCE_OPEN_LINE.search(text, position)
        if opening is None:
            break
        marker = opening.group(2) or opening.group(3)
        start = opening.start() + len(opening.group(1))
        line_end = opening.end()
        content_start = min(line_end + 1, length)
        search_from = content_start
        block: _Span | None = None
        while search_from < length:
            closing = _FENCE_CLOSE_LINE.search(text, search_from)
            if closing is None:
                break
            fence = closing.group(1)
            if fence[0] == marker[0] and len(fence) >= len(marker):
                content_end = max(content_start, closing.start() - 1)
                block = _Span(start, content_start, content_end, closing.end(1), text[start:content_start], "\n" + fence, True)
                break
            search_from = closing.end() + 1
        if block is None:
            opener = text[start:content_start] if content_start > line_end else text[start:line_end] + "\n"
            blocks.append(_Span(start, content_start, length, length, opener, "\n" + marker, True))
            break
        blocks.append(block)
        position = block.end
    return blocks


def _inline_spans(text: str, lo: int, hi: int, spans: list[_Span]) -> None:
    """Code spans, links, images and emphasis (``*``, ``**``, ``_``, ``__``, ``~``, ``~~``)
    in one line."""
    items = _scan_inline(text, lo, hi)
    for _kind, start, content_start, content_end, end in _match_emphasis(items):
        spans.append(_Span(start, content_start, content_end, end, text[start:content_start], text[content_end:end]))
    for item in items:
        if isinstance(item, _Delim):
            continue
        kind, start, end, payload = item
        if kind == "code":
            spans.append(_Span(start, start + payload, end - payload, end, text[start : start + payload], text[end - payload : end]))
        elif kind == "link" or kind == "img":
            label_start, label_end, _url = payload
            spans.append(_Span(start, label_start, label_end, end, text[start:label_start], text[label_end:end]))
            if kind == "link":
                _inline_spans(text, label_start, label_end, spans)


def _span_tree(spans: list[_Span]) -> list[_Span]:
    """Nest spans (they never cross; a crossing one would be dropped)."""
    spans.sort(key=lambda span: (span.start, -span.end))
    roots: list[_Span] = []
    stack: list[_Span] = []
    for span in spans:
        while stack and stack[-1].end <= span.start:
            stack.pop()
        if stack:
            parent = stack[-1]
            if span.start < parent.content_start or span.end > parent.content_end:
                continue
            parent.children.append(span)
            parent.child_starts.append(span.start)
        else:
            roots.append(span)
        stack.append(span)
    return roots


def _enclosing(roots: list[_Span], root_starts: list[int], position: int) -> list[_Span] | None:
    """The spans (outermost first) whose content surrounds the cut ``position`` (between
    ``text[position-1]`` and ``text[position]``), or ``None`` if a cut there would split
    a marker or leave a span's side empty."""
    path: list[_Span] = []
    level, starts = roots, root_starts
    while level:
        index = bisect_right(starts, position - 1) - 1
        if index < 0:
            break
        span = level[index]
        if position >= span.end:
            break
        if position <= span.content_start or position >= span.content_end:
            return None
        path.append(span)
        level, starts = span.children, span.child_starts
    return path


def _priority(text: str, start: int, end: int) -> int:
    newlines = text.count("\n", start, end)
    if newlines >= 2:
        return _PARAGRAPH
    if newlines == 1:
        return _LINE
    before = text[start - 1]
    if before in _SENTENCE_TRAILERS and start >= 2:
        before = text[start - 2]
    return _SENTENCE if before in _SENTENCE_END else _WORD


def _splits_grapheme(text: str, position: int) -> bool:
    """Whether a cut at ``position`` would separate a character from a combining mark,
    variation selector, skin tone, zero-width joiner or the other half of a flag."""
    if position <= 0 or position >= len(text):
        return False
    before, after = text[position - 1], text[position]
    if before == "\u200d" or after == "\u200d" or (before == "\r" and after == "\n"):
        return True
    code = ord(after)
    if 0xFE00 <= code <= 0xFE0F or 0x1F3FB <= code <= 0x1F3FF or 0xE0020 <= code <= 0xE007F:
        return True
    if 0x1F1E6 <= code <= 0x1F1FF and 0x1F1E6 <= ord(before) <= 0x1F1FF:
        return True
    return unicodedata.category(after) in ("Mn", "Me", "Mc")


def _split_unit(text: str, start: int, end: int, roots: list[_Span], root_starts: list[int], limit: int) -> list[str]:
    """Split ``text[start:end]`` — a stretch longer than ``limit`` with no whitespace
    outside formatting spans — into parts.

    Preferred cuts are whitespace inside spans (by the same paragraph > line > sentence >
    word order); the spans open there are closed at the end of the part and re-opened at
    the start of the next (``*a b c*`` → ``*a b*`` + ``*c*``; a code block gets a closing
    fence and a new opening fence carrying its language tag). Failing that, the text is
    cut at the limit (an over-long word or URL), still closing and re-opening spans. If
    even the markers do not fit (say a link whose URL is longer than the limit), the text
    is cut raw at the limit.
    """
    parts: list[str] = []
    cursor = start
    carry = ""  # markers re-opened at the start of the next part
    while cursor < end:
        if len(carry) + (end - cursor) <= limit:
            parts.append(carry + text[cursor:end])
            break
        room = limit - len(carry)  # for content plus closing markers
        best: tuple[int, int, int, list[_Span]] | None = None
        if room > 0:
            for match in _WHITESPACE.finditer(text, cursor, end):
                ws_start, ws_end = match.span()
                if ws_start - cursor > room:
                    break
                if ws_start == cursor:
                    continue
                path = _enclosing(roots, root_starts, ws_start)
                if path is None or any(ws_end >= span.content_end for span in path):
                    continue  # splits a marker, or only whitespace would be left in the span
                closing = "".join(span.close for span in reversed(path))
                if ws_start - cursor + len(closing) > room:
                    continue
                priority = _priority(text, ws_start, ws_end)
                if best is None or priority >= best[0]:
                    best = (priority, ws_start, ws_end, path)
        if best is not None:
            _priority_, cut, resume, path = best
            if path and path[-1].code_block and "\n" in text[cut:resume]:
                resume = text.rfind("\n", cut, resume) + 1  # keep the next code line's indentation
            parts.append(carry + text[cursor:cut] + "".join(span.close for span in reversed(path)))
            carry = "".join(span.open for span in path)
            cursor = resume
            continue
        found: tuple[int, list[_Span]] | None = None
        cut = min(cursor + room, end - 1)
        while cut > cursor:
            path = _enclosing(roots, root_starts, cut)
            # a cut next to whitespace would leave a marker facing a space (`*` + ` word`)
            if path is not None and not text[cut].isspace() and not text[cut - 1].isspace() and not _splits_grapheme(text, cut):
                closing_length = sum(len(span.close) for span in path)
                if cut - cursor + closing_length <= room:
                    found = (cut, path)
                    break
                cut = min(cut - 1, cursor + room - closing_length)
            else:
                cut -= 1
        if found is None:  # markers alone do not fit: cut raw, drop the markers
            cut = min(cursor + limit, end)
            nudged = cut
            while nudged > cursor + 1 and cut - nudged < 8 and _splits_grapheme(text, nudged):
                nudged -= 1
            if not _splits_grapheme(text, nudged):
                cut = nudged
            parts.append(text[cursor:cut])
            carry = ""
            cursor = cut
            continue
        cut, path = found
        parts.append(carry + text[cursor:cut] + "".join(span.close for span in reversed(path)))
        carry = "".join(span.open for span in path)
        cursor = cut
    return [stripped for part in parts if (stripped := part.strip())]


class _Splitter:
    """The greedy part-by-part split of one text (see :func:`split_message`).

    Work is proportional to what the cuts look at: newlines are found with ``str.rfind``,
    code blocks with one multi-line regex, and inline spans are only scanned for a line
    when a part has to be cut inside that line (a line longer than the limit).
    """

    def __init__(self, text: str, limit: int) -> None:
        self.text = text
        self.limit = limit
        self.blocks = _find_code_blocks(text)
        self.block_starts = [block.start for block in self.blocks]
        self.line_spans_cache: dict[int, tuple[list[_Span], list[int]]] = {}

    def block_at(self, position: int) -> _Span | None:
        """The code block with ``start <= position < end``."""
        index = bisect_right(self.block_starts, position) - 1
        if index >= 0 and position < self.blocks[index].end:
            return self.blocks[index]
        return None

    def line_spans(self, position: int) -> tuple[list[_Span], list[int]]:
        text = self.text
        line_start = text.rfind("\n", 0, position) + 1
        cached = self.line_spans_cache.get(line_start)
        if cached is None:
            line_end = text.find("\n", position)
            spans: list[_Span] = []
            _inline_spans(text, line_start, len(text) if line_end < 0 else line_end, spans)
            roots = _span_tree(spans)
            cached = self.line_spans_cache[line_start] = (roots, [span.start for span in roots])
        return cached

    def best_break(self, cursor: int) -> tuple[int, int] | None:
        """The best allowed whitespace run starting within ``limit`` of ``cursor``:
        ``(start, end)`` or ``None``."""
        text, length = self.text, len(self.text)
        window_end = cursor + self.limit
        scan_end = window_end  # take in a whitespace run that straddles the limit
        while scan_end < length and text[scan_end].isspace():
            scan_end += 1
        line_break: tuple[int, int] | None = None
        newline = text.rfind("\n", cursor, scan_end)
        while newline > cursor:
            ws_start, ws_end = newline, newline + 1
            while text[ws_start - 1].isspace():
                ws_start -= 1
            while ws_end < length and text[ws_end].isspace():
                ws_end += 1
            if ws_start <= window_end and self.block_at(ws_start) is None:
                if text.count("\n", ws_start, ws_end) >= 2:
                    return ws_start, ws_end
                if line_break is None:
                    line_break = (ws_start, ws_end)
            newline = text.rfind("\n", cursor, ws_start)
        if line_break is not None or self.block_at(cursor) is not None:
            return line_break
        # No line break in reach: the window lies inside one long line.
        roots, _starts = self.line_spans(cursor)
        best: tuple[int, int] | None = None
        best_priority = -1
        root_index = 0
        for match in _WHITESPACE.finditer(text, cursor):
            ws_start, ws_end = match.span()
            if ws_start > window_end:
                break
            while root_index < len(roots) and roots[root_index].end <= ws_start:
                root_index += 1
            if root_index < len(roots) and roots[root_index].start < ws_start:
                continue  # inside a span
            priority = _priority(text, ws_start, ws_end)
            if priority >= best_priority:
                best, best_priority = (ws_start, ws_end), priority
        return best

    def unit(self, cursor: int) -> tuple[int, int, list[_Span], list[int]]:
        """The stretch from ``cursor`` to the next allowed break (a code block, or part of
        one line), where to resume after it, and the spans inside it."""
        text, length = self.text, len(self.text)
        block = self.block_at(cursor)
        if block is not None:
            after = _WHITESPACE.match(text, block.end)
            return block.end, (after.end() if after else block.end), [block], [block.start]
        roots, starts = self.line_spans(cursor)
        root_index = 0
        for match in _WHITESPACE.finditer(text, cursor):
            ws_start, ws_end = match.span()
            if "\n" not in match.group():
                while root_index < len(roots) and roots[root_index].end <= ws_start:
                    root_index += 1
                if root_index < len(roots) and roots[root_index].start < ws_start:
                    continue
            return ws_start, ws_end, roots, starts
        return length, length, roots, starts

    def split(self) -> list[str]:
        text, length, limit = self.text, len(self.text), self.limit
        parts: list[str] = []
        cursor = 0
        while cursor < length:
            if length - cursor <= limit:
                parts.append(text[cursor:])
                break
            chosen = self.best_break(cursor)
            if chosen is not None:
                parts.append(text[cursor : chosen[0]])
                cursor = chosen[1]
                continue
            unit_end, resume, roots, starts = self.unit(cursor)
            parts.extend(_split_unit(text, cursor, unit_end, roots, starts, limit))
            cursor = resume
        return parts


def split_message(text: str, limit: int) -> list[str]:
    """Split a formatted reply into parts of at most ``limit`` characters.

    Length is ``len()`` of the Python string: one per code point. Twilio's 1600 limit also
    counts characters, but an emoji outside the Basic Multilingual Plane is one Python
    character and two UTF-16 units, and a flag or family emoji is several code points; keep
    a margin if a reply may be emoji-heavy.

    Cuts fall on whitespace, preferring in order: paragraph boundaries (blank lines), line
    breaks, sentence ends (``.``, ``!``, ``?`` then whitespace), and spaces between words;
    among the best kind the cut nearest the limit wins. A part is never cut inside a word,
    a URL or a formatting span (``*bold*``, ``**bold**``, ``_italic_``, ``__x__``,
    ``~strike~``, ``~~x~~``, `` `code` ``, a fenced code block, ``[text](url)``,
    ``![alt](url)``), with two exceptions for things that cannot fit at all:

    * a span longer than ``limit`` is split at whitespace inside it, closing its markers at
      the end of one part and re-opening them at the start of the next (``**a b**`` →
      ``**a**`` / ``**b**``; a code block is closed with its fence and re-opened with its
      opening line, language tag included; a link becomes ``[a](url)`` / ``[b](url)``);
    * a single word or URL longer than ``limit`` is cut at the limit (re-opening any span
      around it), the only case where a token is broken. If even a span's markers cannot
      fit (a link whose URL is longer than the limit), the span is cut at the limit as is.

    Parts are stripped, never empty and in order; joining them with whitespace gives back
    every word in order (plus re-opened markers in the two cases above). Emphasis is
    recognised within a line only. Empty or blank ``text`` gives ``[]``.

    Raises ``ValueError`` when ``limit`` is below 20 and ``TypeError`` for a non-``str``
    ``text`` or non-``int`` ``limit``.
    """
    _require_str(text, "text")
    if isinstance(limit, bool) or not isinstance(limit, int):
        raise TypeError(f"limit must be an integer >= {MIN_SPLIT_LIMIT}; got {type(limit).__name__}")
    if limit < MIN_SPLIT_LIMIT:
        raise ValueError(f"limit must be an integer >= {MIN_SPLIT_LIMIT}; got {limit}")
    stripped = text.strip()
    if len(stripped) <= limit:
        return [stripped] if stripped else []
    return _Splitter(stripped, limit).split()


# ---------------------------------------------------------------------------------------
# The respond node's entry point
# ---------------------------------------------------------------------------------------

_SAFE_URL = re.compile(r"(?:https?://|mailto:)\S+$", re.IGNORECASE)
_TITLE_MAX = 100


def _sources(citations: Sequence[Mapping[str, Any]], dialect: str) -> str:
    """The "Sources:" block: one line per distinct http(s)/mailto URL, first title wins."""
    seen: set[str] = set()
    lines: list[str] = []
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
            continue  # no link, or a scheme (javascript:, data:) a widget must not render
        seen.add(url)
        raw_title = citation.get("title")
        title = " ".join(str(raw_title).split()) if raw_title is not None else ""
        if len(title) > _TITLE_MAX:
            title = title[: _TITLE_MAX - 1].rstrip() + "…"
        if dialect == "markdown":
            label = (title or url).replace("\\", "\\\\").replace("[", "\\[").replace("]", "\\]")
            target = url.replace("(", "%28").replace(")", "%29")  # a bare ")" would end the link
            lines.append(f"- [{label}]({target})")
        else:
            lines.append(f"- {title}: {url}" if title and title != url else f"- {url}")
    if not lines:
        return ""
    heading = "_Sources:_" if dialect == "whatsapp" else "Sources:"
    return "\n".join([heading, *lines])


def shape_reply(
    text: str,
    *,
    dialect: Dialect,
    max_length: int | None,
    citations: Sequence[Mapping[str, Any]] | None = None,
    show_citations: bool = True,
) -> list[str]:
    """Shape a model reply for a channel: format it for ``dialect``, append a short
    "Sources:" section (when ``show_citations`` and some citation has a ``url``), then split
    into parts of at most ``max_length`` characters (``None``: one part).

    Citations are mappings with ``url`` and optional ``title``; they are deduplicated by
    URL and only ``http(s)``/``mailto`` URLs are shown. An empty reply gives ``[]``.
    """
    if dialect not in DIALECTS:
        raise ValueError(f"dialect must be one of {', '.join(DIALECTS)}; got {dialect!r}")
    if max_length is not None and (isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < MIN_SPLIT_LIMIT):
        raise ValueError(f"max_length must be None or an integer >= {MIN_SPLIT_LIMIT}; got {max_length!r}")
    if citations is not None and (isinstance(citations, (str, bytes)) or not isinstance(citations, Sequence)):
        raise TypeError(f"citations must be a list of mappings or None; got {type(citations).__name__}")
    body = format_for(text, dialect)
    sources = _sources(citations, dialect) if citations and show_citations else ""
    shaped = f"{body}\n\n{sources}" if body and sources else body or sources
    if max_length is None:
        return [shaped] if shaped else []
    return split_message(shaped, max_length)


def _require_str(value: object, name: str) -> None:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str; got {type(value).__name__}")
