"""Offline answers: whole sentences from the one passage they quote, or an honest "not found".

Held out from bench/answers.yaml: different questions and texts, so the answerer is not tuned
to the benchmark alone. The texts are hard-wrapped the way knowledge text often is.
"""

from __future__ import annotations

import pytest

from callable_agents.core.conversation.turn.offline import answer_units, extract_answer

DELIVERY = {
    "title": "Delivery",
    "url": "https://shop.example/delivery",
    "text": (
        "Delivery area\n"
        "We deliver bouquets and plants within 8 miles (13 km) of the shop, Tuesday to\n"
        "Saturday between 9:00 and 16:00. Orders placed before noon arrive the same day.\n\n"
        "- Within 3 miles of the shop (Riverton, Northbank): €4\n"
        "- From 3 to 8 miles (Hartley, Millbrook): €7\n"
    ),
}
PRICES = {
    "title": "prices.pdf, page 1",
    "url": None,
    "text": "Price list\nA dozen red roses costs 25 euros. A single sunflower costs\n3 euros. Gift wrapping is free.",
}
CARE = {
    "title": "Flower care",
    "url": "https://shop.example/care",
    "text": "Flower care\nRoses last longer when you cut their stems at an angle and change the water\nevery two days. Keep them away from fruit.",
}
DIET = {
    "title": "Dietary options",
    "url": "https://shop.example/diet",
    "text": "Vegan and vegetarian\nVegan options are marked with a leaf: the oat cookie, the\nlentil soup and the grilled vegetable wrap. All our soups are vegetarian.",
}
PASSAGES = [DELIVERY, PRICES, CARE, DIET]


def test_hard_wrapped_lines_are_joined_before_sentences_are_cut() -> None:
    units = [unit for _heading, unit in answer_units(str(DELIVERY["text"]))]
    assert units[0] == (
        "We deliver bouquets and plants within 8 miles (13 km) of the shop, Tuesday to Saturday between 9:00 and 16:00."
    )
    assert answer_units(str(DIET["text"]))[0] == (
        "Vegan and vegetarian",
        "Vegan options are marked with a leaf: the oat cookie, the lentil soup and the grilled vegetable wrap.",
    )


@pytest.mark.parametrize(
    ("question", "fact", "passage"),
    [
        ("Do you deliver on Saturdays?", "Tuesday to Saturday between 9:00 and 16:00.", 0),
        ("How much does a dozen red roses cost?", "A dozen red roses costs 25 euros.", 1),
        ("Is gift wrapping free?", "Gift wrapping is free.", 1),
        ("How often should I change the water for roses?", "every two days", 2),
        ("Which vegan options are there?", "the oat cookie, the lentil soup", 3),
        ("How much is delivery to Millbrook?", "From 3 to 8 miles (Hartley, Millbrook): €7.", 0),
    ],
)
def test_answers_are_whole_sentences_of_the_passage_they_cite(question: str, fact: str, passage: int) -> None:
    found = extract_answer(question, PASSAGES)
    assert found.text is not None and fact in found.text, found
    assert found.passage == passage  # the citation is the passage quoted, not every passage with a URL
    assert found.text[0].isupper() and found.text.endswith((".", "!"))


@pytest.mark.parametrize(
    ("question", "term"),
    [("Do you deliver to Riverside?", "Riverside"), ("Do you sell Tulips from Amsterdam?", "Tulips")],
)
def test_a_name_the_knowledge_does_not_mention_is_not_found(question: str, term: str) -> None:
    assert extract_answer(question, PASSAGES).missing == term


def test_an_unrelated_question_gets_nothing() -> None:
    found = extract_answer("what is the meaning of life", PASSAGES)
    assert found.text is None and found.missing is None


def test_business_info_answers_what_it_says_and_cites_nothing() -> None:
    found = extract_answer("What is your phone number?", PASSAGES, {"phone": "+44 20 7946 0000"})
    assert found.text == "Our phone number is +44 20 7946 0000." and found.passage is None
