"""Normalising extracted text and cutting it into token-bounded, overlapping passages.

Passages follow the document's structure: a Markdown heading (``# ...``) starts a new
passage and is remembered as the passage's ``heading`` (the path of headings above it, e.g.
``Services > Repairs``); inside a section, sentences are packed up to ``max_tokens`` and the
next passage repeats the last ``overlap_tokens`` worth of sentences, so an answer that
straddles a boundary is still found whole. A sentence longer than a passage is cut on token
boundaries.

Token counts come from the Llama tokenizer shipped in the WordLlama wheel (local, fast,
close to what hosted models count), whatever model embeds the passages. Each passage also
carries the token ids of its indexed text, so a model declaring the same tokenizer
(:data:`TOKENIZER_NAME`; the local WordLlama does) embeds them without tokenizing again.
"""

from __future__ import annotations

import functools
import importlib.util
import re
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer

from callable_agents.core.contracts.loaders import Document

DEFAULT_MAX_TOKENS = 200
DEFAULT_OVERLAP_TOKENS = 40
TOKENIZER_FILE = "tokenizers/l2_supercat_tokenizer_config.json"
TOKENIZER_NAME = "wordllama/l2_supercat"

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u200b-\u200d\u2060\ufeff]")
_SPACES = re.compile(r"[ \t\f\v]+")
_BLANK_LINES = re.compile(r"\n{3,}")
_HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t#]*$")
_PARAGRAPHS = re.compile(r"\n[ \t]*\n")
# A sentence ends at . ! ? (optionally followed by a closing quote/bracket) before whitespace.
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+")


def normalise_text(text: str) -> str:
    """Canonical text: NFKC, no control or zero-width characters, tidy spaces and blank lines."""
    text = unicodedata.normalize("NFKC", text).replace("\r\n", "\n").replace("\r", "\n")
    text = _CONTROL.sub("", text)
    lines = [_SPACES.sub(" ", line).strip() for line in text.split("\n")]
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


@functools.cache
def tokenizer() -> Tokenizer:
    """The Llama tokenizer from the WordLlama wheel, found without importing ``wordllama``
    (whose import configures the root logger)."""
    spec = importlib.util.find_spec("wordllama")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the wordllama package is not installed; it ships the tokenizer passages are counted with")
    path = Path(list(spec.submodule_search_locations)[0]) / TOKENIZER_FILE
    loaded = Tokenizer.from_file(str(path))
    loaded.no_padding()
    loaded.no_truncation()
    return loaded


def encode(texts: Sequence[str]) -> list[list[int]]:
    """Token ids of each text (one tokenizer call: per-text calls cost more than tokenizing)."""
    if not texts:
        return []
    loaded = tokenizer()
    # encode_batch_fast (tokenizers >= 0.20) skips computing offsets, which we don't need here.
    batch = getattr(loaded, "encode_batch_fast", loaded.encode_batch)
    return [encoding.ids for encoding in batch(list(texts), add_special_tokens=False)]


def count_tokens(texts: Sequence[str]) -> list[int]:
    return [len(ids) for ids in encode(texts)]


@dataclass(frozen=True)
class ChunkDraft:
    """A passage ready to embed: its text (heading path first), metadata and size.

    ``token_ids`` are the ids of :attr:`indexed_text` under :data:`TOKENIZER_NAME` (pieces
    tokenized separately and joined, which for average-pooled embeddings is the same thing).
    """

    text: str
    meta: dict[str, Any]
    token_count: int
    token_ids: list[int] | None = field(default=None, repr=False, compare=False)

    @property
    def indexed_text(self) -> str:
        """What is embedded and keyword-indexed: the document title, then the passage."""
        title = str(self.meta.get("title") or "")
        if title and not self.text.startswith(title):
            return f"{title}\n{self.text}"
        return self.text


@dataclass
class _Unit:
    """A sentence (or a piece of one) with its token ids."""

    text: str
    ids: list[int]
    starts_paragraph: bool

    @property
    def tokens(self) -> int:
        return len(self.ids)


@dataclass
class _Section:
    heading: str
    paragraphs: list[str] = field(default_factory=list)


class Chunker:
    """Cuts documents into passages of at most ``max_tokens`` with ``overlap_tokens`` of overlap."""

    def __init__(self, max_tokens: int = DEFAULT_MAX_TOKENS, overlap_tokens: int = DEFAULT_OVERLAP_TOKENS) -> None:
        if max_tokens < 16:
            raise ValueError(f"max_tokens: expected at least 16, got {max_tokens}")
        if not 0 <= overlap_tokens < max_tokens // 2:
            raise ValueError(f"overlap_tokens: expected 0 to {max_tokens // 2 - 1}, got {overlap_tokens}")
        self.max_tokens = max_tokens
        self.overlap_tokens = overlap_tokens

    def split(self, documents: Iterable[Document]) -> list[ChunkDraft]:
        drafts: list[ChunkDraft] = []
        for document in documents:
            drafts.extend(self.split_document(document))
        return drafts

    def split_document(self, document: Document) -> list[ChunkDraft]:
        text = normalise_text(document.text)
        if not text:
            return []
        base_meta = {key: value for key, value in document.metadata.items() if key != "bytes" and value is not None}
        title = str(base_meta.get("title") or "")
        sections = _sections(text)
        sentences = [_sentences(section.paragraphs) for section in sections]
        flat = [sentence for group in sentences for sentence, _ in group]
        encoded = encode([title, *(section.heading for section in sections), *flat])
        title_ids, heading_ids, sentence_ids = (
            encoded[0],
            encoded[1 : len(sections) + 1],
            iter(encoded[len(sections) + 1 :]),
        )
        drafts: list[ChunkDraft] = []
        for section, group, heading in zip(sections, sentences, heading_ids, strict=True):
            units = self._units(group, sentence_ids)
            for body, ids in self._pack(units):
                chunk_text = f"{section.heading}\n{body}" if section.heading else body
                meta = dict(base_meta)
                if section.heading:
                    meta["heading"] = section.heading
                prefix = title_ids if title and not chunk_text.startswith(title) else []  # as in indexed_text
                drafts.append(
                    ChunkDraft(text=chunk_text, meta=meta, token_count=len(ids), token_ids=[*prefix, *heading, *ids])
                )
        return drafts

    def _units(self, sentences: list[tuple[str, bool]], ids: Iterator[list[int]]) -> list[_Unit]:
        units: list[_Unit] = []
        for sentence, starts_paragraph in sentences:
            sentence_ids = next(ids)
            if len(sentence_ids) <= self.max_tokens:
                units.append(_Unit(sentence, sentence_ids, starts_paragraph))
            else:
                units.extend(self._cut_long(sentence, starts_paragraph))
        return units

    def _cut_long(self, sentence: str, starts_paragraph: bool) -> list[_Unit]:
        """Cut an over-long sentence (a table row dump, a URL list) on token boundaries."""
        encoding = tokenizer().encode(sentence, add_special_tokens=False)
        offsets, ids = encoding.offsets, encoding.ids
        step = self.max_tokens - self.overlap_tokens
        units = []
        for start in range(0, len(offsets), step):
            window = offsets[start : start + self.max_tokens]
            piece = sentence[window[0][0] : window[-1][1]].strip()
            if piece:
                units.append(_Unit(piece, ids[start : start + self.max_tokens], starts_paragraph and start == 0))
            if start + self.max_tokens >= len(offsets):
                break
        return units

    def _pack(self, units: list[_Unit]) -> list[tuple[str, list[int]]]:
        """Greedy packing of units into passages, carrying the tail of each into the next."""
        passages: list[tuple[str, list[int]]] = []
        current: list[_Unit] = []
        current_tokens = 0
        fresh = 0  # units in ``current`` that no earlier passage holds
        for unit in units:
            if current and current_tokens + unit.tokens > self.max_tokens:
                passages.append(_joined(current))
                current = self._overlap_tail(current, room=self.max_tokens - unit.tokens)
                current_tokens = sum(kept.tokens for kept in current)
                fresh = 0
            current.append(unit)
            current_tokens += unit.tokens
            fresh += 1
        if current and fresh:
            passages.append(_joined(current))
        return passages

    def _overlap_tail(self, units: list[_Unit], room: int) -> list[_Unit]:
        budget = min(self.overlap_tokens, room)
        tail: list[_Unit] = []
        used = 0
        for unit in reversed(units):
            if used + unit.tokens > budget:
                break
            tail.insert(0, unit)
            used += unit.tokens
        if len(tail) == len(units):  # never repeat a whole passage
            tail = tail[1:]
        return tail


def _sentences(paragraphs: list[str]) -> list[tuple[str, bool]]:
    """(sentence, starts a paragraph) pairs."""
    sentences: list[tuple[str, bool]] = []
    for paragraph in paragraphs:
        pieces = [piece for piece in _SENTENCE_END.split(paragraph) if piece.strip()]
        sentences.extend((piece.strip(), index == 0) for index, piece in enumerate(pieces))
    return sentences


def _joined(units: list[_Unit]) -> tuple[str, list[int]]:
    parts: list[str] = []
    ids: list[int] = []
    for index, unit in enumerate(units):
        if index:
            parts.append("\n\n" if unit.starts_paragraph else " ")
        parts.append(unit.text)
        ids.extend(unit.ids)
    return "".join(parts), ids


def _sections(text: str) -> list[_Section]:
    """Split normalised text at Markdown headings, tracking the heading path."""
    sections: list[_Section] = [_Section(heading="")]
    path: list[tuple[int, str]] = []
    for block in _PARAGRAPHS.split(text):
        lines = block.split("\n")
        body: list[str] = []
        for line in lines:
            match = _HEADING.match(line)
            if match is None:
                body.append(line)
                continue
            if body:
                sections[-1].paragraphs.append("\n".join(body))
                body = []
            level, title = len(match.group(1)), match.group(2).strip()
            path = [(lvl, name) for lvl, name in path if lvl < level] + [(level, title)]
            sections.append(_Section(heading=" > ".join(name for _, name in path)))
        if body:
            sections[-1].paragraphs.append("\n".join(body))
    # A heading with nothing under it still names what follows it; drop only empty sections.
    return [section for section in sections if section.paragraphs]
