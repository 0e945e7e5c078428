"""Rendering a Markdown reply in a channel's dialect (see :mod:`.dialects`).

Channels that render Markdown get it tidied (:func:`shape_markdown`); the others get it
converted (:func:`convert`): emphasis rewritten in the dialect's markers, headings as strong
text, links as ``text (url)``, tables as one bullet per row, rules dropped, and code kept or
unwrapped as the dialect says. Text in code and URLs is never touched. Pure, stdlib-only and
linear in the length of the text: it runs on every reply.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from callable_agents.core.reply.dialects import PLAIN_MARKUP, STARRED_MARKUP, Dialect, Markup, as_dialect
from callable_agents.core.reply.inline import SPECIAL, Delimiter, code_closer, match_emphasis, require_str, scan_inline

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


def _render_inline(text: str, lo: int, hi: int, markup: Markup, br: str = "\n") -> str:
    """Render one line (or a table cell / link text) of Markdown in ``markup``."""
    if SPECIAL.search(text, lo, hi) is None:
        return text[lo:hi]  # nothing to convert: the common case for prose
    items = scan_inline(text, lo, hi)
    match_emphasis(items)
    markers = markup.markers
    out: list[str] = []
    for item in items:
        if isinstance(item, Delimiter):
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
            out.append(_render_code_span(text[start:end], payload, markup))
        elif kind == "br":
            out.append(br)
        elif kind == "img":
            alt_start, alt_end, url = payload
            alt = " ".join(text[alt_start:alt_end].split())
            out.append(f"{alt}: {url}" if alt else url)
        elif kind == "link":
            label_start, label_end, url = payload
            label = _render_inline(text, label_start, label_end, markup, " ").strip()
            bare = label if markup is PLAIN_MARKUP else _render_inline(text, label_start, label_end, PLAIN_MARKUP, " ").strip()
            if not label or bare == url or bare == url.removeprefix("mailto:"):
                out.append(url)
            else:
                out.append(f"{label} ({url})")
        elif kind == "auto":
            out.append(payload.removeprefix("mailto:"))
    return "".join(out)


def _render_code_span(raw: str, ticks: int, markup: Markup) -> str:
    content = raw[ticks:-ticks]
    if len(content) > 2 and content[0] == " " and content[-1] == " " and content.strip():
        content = content[1:-1]  # CommonMark: one padding space each side is not content
    if not markup.code:
        return content
    if ticks > 1 and "`" not in content:
        return f"`{content}`"  # the starred style only knows single-backtick inline code
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
        closer = code_closer(len(match.group())).search(row, match.end())
        position = closer.end() if closer else match.end()
    cells.append(row[cell_start:])
    return [cell.strip() for cell in cells]


def _table_rows(header: str, body: Sequence[str], markup: Markup) -> list[str]:
    """Tables become one bullet per row: ``- name: value, other: value``."""
    names = [_render_inline(cell, 0, len(cell), PLAIN_MARKUP, " ").strip() for cell in _split_cells(header)]
    rows: list[str] = []
    for line in body:
        pairs = []
        for index, cell in enumerate(_split_cells(line)):
            value = _render_inline(cell, 0, len(cell), markup, " ").strip()
            if not value:
                continue
            name = names[index] if index < len(names) else ""
            pairs.append(f"{name}: {value}" if name else value)
        if pairs:
            rows.append("- " + ", ".join(pairs))
    if not rows and any(names):
        rows.append("- " + ", ".join(name for name in names if name))
    return rows


def _heading(content: str, markup: Markup) -> str:
    """A heading becomes its text in strong markers: the nearest a dialect without headings has."""
    title = " ".join(_render_inline(content, 0, len(content), PLAIN_MARKUP, " ").split())
    if not title:
        return ""
    return f"{markup.strong}{title}{markup.strong}"


def _convert_line(line: str, markup: Markup) -> tuple[str | None, bool]:
    """Convert one non-blank line outside code blocks and tables.

    Returns the converted line (``None`` to drop it) and whether it was paragraph text (a
    candidate for a setext heading underline on the next line).
    """
    first = line.lstrip()[:1]
    if first not in _BLOCK_STARTS:  # most lines: plain paragraph text
        return _render_inline(line, 0, len(line), markup).rstrip(), True
    quote = _QUOTE.match(line) if first == ">" else None
    if quote:
        inner, _ = _convert_line(line[quote.end() :], markup)
        if inner is None:
            inner = ""
        return (f"{markup.quote}{inner}".rstrip() if markup.quote else inner), False
    heading = _ATX.match(line)
    if heading:
        title = _heading(heading.group(2) or "", markup)
        return (title or None), False
    if _RULE.match(line):
        return None, False
    bullet = _BULLET.match(line)
    if bullet:
        rest = _render_inline(line, bullet.end(), len(line), markup).rstrip()
        return f"{bullet.group(1)}- {rest}".rstrip(), False
    return _render_inline(line, 0, len(line), markup).rstrip(), True


def _convert(markdown: str, markup: Markup) -> str:
    """The block-level pass: Markdown to text in ``markup``, line by line."""
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
            if markup.code:
                out.append("```")
                out.extend(body)
                out.append("```")
            else:
                out.extend(body)
            previous_was_paragraph = False
            continue
        if previous_was_paragraph and _SETEXT.match(line):
            title = _heading(lines[index - 1].strip(), markup)
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
            out.extend(_table_rows(line, lines[body_start:end], markup))
            previous_was_paragraph = False
            index = end
            continue
        converted, previous_was_paragraph = _convert_line(line, markup)
        if converted is None:
            previous_was_paragraph = False
        elif converted.strip():
            out.append(converted)
        else:
            blank()
        index += 1
    return "\n".join(out).strip("\n").rstrip()


def convert(markdown: str, markup: Markup) -> str:
    """Convert chat-model Markdown to the text ``markup`` describes (see :func:`to_starred`
    and :func:`to_plain` for what becomes of each construct)."""
    require_str(markdown, "markdown")
    return _convert(markdown, markup)


def to_starred(markdown: str) -> str:
    """Convert chat-model Markdown to the ``starred`` dialect (single-asterisk bold).

    ``**x**``/``__x__`` → ``*x*``; ``*x*``/``_x_`` → ``_x_``; ``~~x~~`` → ``~x~``; headings
    → ``*Heading*``; ``[text](url)`` → ``text (url)`` (just ``url`` when the text is the
    URL); ``![alt](url)`` → ``alt: url``; tables → one ``- column: value, …`` bullet per row;
    horizontal rules dropped; fenced code keeps its content inside ```` ``` ```` with the
    language tag dropped; inline code, numbered lists and ``>`` quotes kept; ``*``/``+``
    bullets → ``-``. Text in code and URLs is untouched, as are ``snake_case`` and
    ``2*3*4``. Runs of blank lines collapse to one.
    """
    require_str(markdown, "markdown")
    return _convert(markdown, STARRED_MARKUP)


def to_plain(markdown: str) -> str:
    """Strip Markdown to plain text: emphasis markers, code fences and backticks and quote
    markers go; headings become their text; links become ``text (url)``; tables become
    ``- column: value`` bullets; bullets are written ``- ``; numbered lists stay."""
    require_str(markdown, "markdown")
    return _convert(markdown, PLAIN_MARKUP)


def shape_markdown(markdown: str) -> str:
    """Tidy Markdown for channels that render it (a chat window in a browser).

    Line endings become ``\\n``, the text is trimmed and runs of blank lines outside fenced
    code collapse to a single blank line. Everything else is left as the model wrote it.
    """
    require_str(markdown, "markdown")
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


def format_for(text: str, dialect: Dialect | str) -> str:
    """Format a Markdown reply for a channel's ``dialect``: a :class:`Dialect`, or core's
    ``starred``, ``markdown`` or ``plain`` by name (see
    :class:`callable_agents.core.contracts.channels.ChannelCapabilities`)."""
    require_str(text, "text")
    markup = as_dialect(dialect).markup
    if markup is None:
        return shape_markdown(text)
    return _convert(text, markup)
