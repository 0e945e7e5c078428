"""Splitting a formatted reply into parts a channel accepts (:func:`split_message`).

Providers cap a message's length (1,600 characters is common), so a long reply goes out as
several messages, cut where a reader would pause and never inside a word, a URL or a
formatting span. Work is proportional to what the cuts look at; pure and stdlib-only.
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_right
from dataclasses import dataclass, field
from typing import Literal

from callable_agents.core.reply.inline import Delimiter, match_emphasis, require_str, scan_inline

MIN_SPLIT_LIMIT = 20  # below this even a short sentence plus re-opened markers cannot fit

# How a provider counts a message's length: one per code point (Python's len), or in UTF-16
# code units, where a character outside the Basic Multilingual Plane (most emoji) is two.
# A part within a limit in UTF-16 units is within it in code points too: the stricter count.
LengthUnit = Literal["code_points", "utf16"]
LENGTH_UNITS: tuple[str, ...] = ("code_points", "utf16")


def utf16_length(text: str) -> int:
    """The length of ``text`` in UTF-16 code units."""
    return len(text) + sum(1 for character in text if ord(character) > 0xFFFF)


def measured_length(text: str, unit: LengthUnit) -> int:
    """The length of ``text`` as a provider counting in ``unit`` sees it."""
    return utf16_length(text) if unit == "utf16" else len(text)


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
    items = scan_inline(text, lo, hi)
    for _kind, start, content_start, content_end, end in match_emphasis(items):
        spans.append(_Span(start, content_start, content_end, end, text[start:content_start], text[content_end:end]))
    for item in items:
        if isinstance(item, Delimiter):
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


def split_message(text: str, limit: int, unit: LengthUnit = "code_points") -> list[str]:
    """Split a formatted reply into parts of at most ``limit`` characters.

    ``unit`` says how the provider counts: ``"code_points"`` (``len()`` of the Python string)
    or ``"utf16"`` (UTF-16 code units: an emoji outside the Basic Multilingual Plane is one
    code point and two units). Parts within ``limit`` UTF-16 units are within ``limit`` code
    points too, so ``"utf16"`` is the stricter count for a provider that may count either way.
    A part too long in UTF-16 units is split again with a limit lowered in proportion, by
    the same rules, until every part fits.

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

    Raises ``ValueError`` when ``limit`` is below 20 or ``unit`` is not one of
    :data:`LENGTH_UNITS`, and ``TypeError`` for a non-``str`` ``text`` or non-``int`` ``limit``.
    """
    require_str(text, "text")
    if isinstance(limit, bool) or not isinstance(limit, int):
        raise TypeError(f"limit must be an integer >= {MIN_SPLIT_LIMIT}; got {type(limit).__name__}")
    if limit < MIN_SPLIT_LIMIT:
        raise ValueError(f"limit must be an integer >= {MIN_SPLIT_LIMIT}; got {limit}")
    if unit not in LENGTH_UNITS:
        raise ValueError(f"unit must be one of {', '.join(LENGTH_UNITS)}; got {unit!r}")
    stripped = text.strip()
    if len(stripped) <= limit:
        parts = [stripped] if stripped else []
    else:
        parts = _Splitter(stripped, limit).split()
    if unit == "code_points":
        return parts
    return [piece for part in parts for piece in _fit_utf16(part, limit)]


def _fit_utf16(part: str, limit: int) -> list[str]:
    """``part`` (within ``limit`` code points) as parts within ``limit`` UTF-16 units."""
    units = utf16_length(part)
    if units <= limit:
        return [part]
    # Every code point is one or two units, so a lowered limit always makes progress; a
    # part still too long (its cuts fell short of the lowered limit) is split again.
    lowered = max(MIN_SPLIT_LIMIT, min(len(part) - 1, limit * len(part) // units))
    pieces = _Splitter(part, lowered).split()
    if len(pieces) == 1 and utf16_length(pieces[0]) > limit:  # nothing left to cut at this limit
        return _fit_utf16_raw(pieces[0], limit)
    return [fitted for piece in pieces for fitted in _fit_utf16(piece, limit)]


def _fit_utf16_raw(text: str, limit: int) -> list[str]:
    """Cut ``text`` at the limit in UTF-16 units (never inside a surrogate pair): the last
    resort for text with no allowed cut, as an over-long word is cut at the limit."""
    parts: list[str] = []
    start = units = 0
    for index, character in enumerate(text):
        width = 2 if ord(character) > 0xFFFF else 1
        if units + width > limit:
            cut = index
            while cut > start + 1 and _splits_grapheme(text, cut):  # keep a grapheme whole
                cut -= 1
            parts.append(text[start:cut])
            start, units = cut, utf16_length(text[cut:index])
        units += width
    parts.append(text[start:])
    return [part for part in parts if part]
