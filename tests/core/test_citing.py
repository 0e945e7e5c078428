"""Citations are the passages a reply marks, and the markers leave the text."""

from __future__ import annotations

from callable_agents.core.conversation.turn.citing import citations_of, take_markers

PASSAGES = [
    {"title": "Hours", "url": "https://x.example/hours", "page": None, "source_id": "s1", "text": "..."},
    {"title": "Prices", "url": None, "page": 2, "source_id": "s2", "text": "..."},
    {"title": "Care", "url": "https://x.example/care", "page": None, "source_id": "s3", "text": "..."},
]


def test_marked_passages_are_cited_in_order_and_the_markers_removed() -> None:
    text, cited = take_markers("We open at 7:00 [1]. Roses cost 25 euros [2][1], and last a week [2, 3].", len(PASSAGES))
    assert text == "We open at 7:00. Roses cost 25 euros, and last a week."
    assert cited == [0, 1, 2]
    assert [c["title"] for c in citations_of(PASSAGES, cited)] == ["Hours", "Prices", "Care"]
    assert citations_of(PASSAGES, [1]) == [{"title": "Prices", "url": None, "page": 2, "source_id": "s2"}]


def test_a_reply_without_markers_cites_nothing() -> None:
    assert take_markers("We open at 7:00.", len(PASSAGES)) == ("We open at 7:00.", [])


def test_brackets_that_name_no_passage_stay_as_written() -> None:
    text, cited = take_markers("Since [2009] we bake daily [7]; see [1].", len(PASSAGES))
    assert (text, cited) == ("Since [2009] we bake daily [7]; see.", [0])
