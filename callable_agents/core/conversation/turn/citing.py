"""Which passages a reply cites: the ones its answer used, and no others.

The prompt numbers the turn's passages (``[1]``, ``[2]``, ...) and tells the model to mark
each sentence with the passages it relies on. ``respond`` keeps those passages as the
reply's citations and removes the markers from the text (the channel shows the sources in
its own way under the answer); a reply without a marker cites nothing. Offline answers
quote one passage and cite exactly that one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

# " [2]" or "[2][3]" or "[2, 3]": the marker and the space before it.
_MARKER = re.compile(r"[ \t]?\[(\d{1,2}(?:\s*,\s*\d{1,2})*)\]")
CITATION_KEYS = ("title", "url", "page", "source_id")


def take_markers(text: str, passage_count: int) -> tuple[str, list[int]]:
    """``text`` without the markers of existing passages, and their indexes (0-based, in order).

    A bracketed number that names no passage (``[2024]``, ``[7]`` of five) is left as written.
    """
    cited: list[int] = []

    def replace(match: re.Match[str]) -> str:
        numbers = [int(number) for number in re.split(r"\s*,\s*", match.group(1))]
        if not all(1 <= number <= passage_count for number in numbers):
            return match.group(0)
        for number in numbers:
            if number - 1 not in cited:
                cited.append(number - 1)
        return ""

    cleaned = _MARKER.sub(replace, text)
    cleaned = re.sub(r"[ \t]+([.,;:!?])", r"\1", cleaned)  # "open daily [1]." -> "open daily."
    return cleaned, cited


def citations_of(passages: Sequence[Mapping[str, Any]], indexes: Sequence[int]) -> list[dict[str, Any]]:
    """The cited passages as citations (title, URL, page, source), in the order cited."""
    return [{key: passages[index].get(key) for key in CITATION_KEYS} for index in indexes if 0 <= index < len(passages)]
