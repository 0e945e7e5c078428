"""Shaping replies for channels: Markdown → starred (single-asterisk bold) / plain
conversion, and splitting long replies into parts that never break a word, URL or formatting
span.

Example tests pin each conversion rule; hypothesis property tests check the splitting and
conversion invariants on generated texts that mix words, URLs, formatting spans and
paragraphs.
"""

from __future__ import annotations

import ast
import string
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import callable_agents.core.reply
from callable_agents.core.reply import (
    STARRED,
    Dialect,
    Markup,
    as_dialect,
    format_for,
    shape_markdown,
    shape_reply,
    split_message,
    to_plain,
    to_starred,
    utf16_length,
)

PROPERTY_SETTINGS = settings(max_examples=200, deadline=None)


# ---------------------------------------------------------------------------------------
# to_starred: one rule at a time
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("markdown", "expected"),
    [
        ("**bold** and __bold__", "*bold* and *bold*"),
        ("*italic* and _italic_", "_italic_ and _italic_"),
        ("~~gone~~", "~gone~"),
        ("***both***", "_*both*_"),
        ("**bold with _italic_ inside**", "*bold with _italic_ inside*"),
        ("*italic with **bold** inside*", "_italic with *bold* inside_"),
        ("**Note:** read this", "*Note:* read this"),
        ("a **bold**, then more.", "a *bold*, then more."),
        ("~already whatsapp strike~", "~already whatsapp strike~"),
        ("中文**粗体**中文", "中文*粗体*中文"),
    ],
)
def test_starred_emphasis(markdown: str, expected: str) -> None:
    assert to_starred(markdown) == expected


@pytest.mark.parametrize("level", range(1, 7))
def test_starred_headings_of_every_level_become_bold_lines(level: int) -> None:
    assert to_starred("#" * level + " Opening hours\nWe open at 9.") == "*Opening hours*\nWe open at 9."


def test_starred_heading_details() -> None:
    assert to_starred("## Prices **today** ##") == "*Prices today*"
    assert to_starred("# See [docs](https://x.com/a_b)") == "*See docs (https://x.com/a_b)*"
    assert to_starred("Setext title\n===\nbody") == "*Setext title*\nbody"
    assert to_starred("#hashtag is not a heading") == "#hashtag is not a heading"
    assert to_starred("#\n\ntext") == "text"  # an empty heading is dropped


@pytest.mark.parametrize(
    ("markdown", "expected"),
    [
        ("See [the docs](https://x.com/docs).", "See the docs (https://x.com/docs)."),
        ("[https://x.com](https://x.com)", "https://x.com"),
        ('[Docs](https://x.com/d "The title")', "Docs (https://x.com/d)"),
        ("[Docs](<https://x.com/a b>)", "Docs (https://x.com/a b)"),
        ("[**Bold** link](https://x.com)", "*Bold* link (https://x.com)"),
        ("[Wiki](https://en.wikipedia.org/wiki/Foo_(bar))", "Wiki (https://en.wikipedia.org/wiki/Foo_(bar))"),
        ("[mail us](mailto:a@b.co)", "mail us (mailto:a@b.co)"),
        ("![Our logo](https://x.com/logo.png)", "Our logo: https://x.com/logo.png"),
        ("![](https://x.com/logo.png)", "https://x.com/logo.png"),
        ("<https://x.com/a_b_c>", "https://x.com/a_b_c"),
        ("<team@example.com>", "team@example.com"),
        ("[not a link] (no url)", "[not a link] (no url)"),
    ],
)
def test_starred_links_and_images(markdown: str, expected: str) -> None:
    assert to_starred(markdown) == expected


def test_starred_tables_become_one_bullet_per_row() -> None:
    markdown = (
        "Our prices:\n\n"
        "| Service | Price | Notes |\n"
        "|:--------|------:|:-----:|\n"
        "| **Cut** | $20 | walk-in |\n"
        "| Colour | $50 | |\n"
        "| Pipe \\| test | $1 | `a|b` |\n"
        "\nBook soon."
    )
    assert to_starred(markdown) == (
        "Our prices:\n\n"
        "- Service: *Cut*, Price: $20, Notes: walk-in\n"
        "- Service: Colour, Price: $50\n"
        "- Service: Pipe | test, Price: $1, Notes: `a|b`\n\n"
        "Book soon."
    )


def test_starred_table_without_leading_pipes_and_with_br() -> None:
    markdown = "Day | Hours\n--- | ---\nMon | 9-5<br>lunch 12-1\n"
    assert to_starred(markdown) == "- Day: Mon, Hours: 9-5 lunch 12-1"


def test_a_pipe_in_a_sentence_is_not_a_table() -> None:
    assert to_starred("a | b\nnext line") == "a | b\nnext line"


@pytest.mark.parametrize("rule", ["---", "***", "___", "- - -", "* * *", "  ----------"])
def test_starred_drops_horizontal_rules(rule: str) -> None:
    assert to_starred(f"Above\n\n{rule}\n\nBelow") == "Above\n\nBelow"


def test_starred_fenced_code_keeps_content_and_drops_the_language() -> None:
    markdown = "Run this:\n```python\nx = a**b**c  # _not_ italic\n    y = [t](u)\n```\nDone."
    assert to_starred(markdown) == "Run this:\n```\nx = a**b**c  # _not_ italic\n    y = [t](u)\n```\nDone."


def test_starred_tilde_and_unclosed_fences() -> None:
    assert to_starred("~~~js\nlet a = **b**\n~~~") == "```\nlet a = **b**\n```"
    assert to_starred("```\nunclosed **x**") == "```\nunclosed **x**\n```"
    assert to_starred("````\n```\ninner\n```\n````") == "```\n```\ninner\n```\n```"


def test_starred_code_block_nested_in_a_list_item() -> None:
    markdown = "1. Install:\n    ```bash\n    pip install my_pkg**x**\n      --flag\n    ```\n2. Run **it**"
    assert to_starred(markdown) == "1. Install:\n```\npip install my_pkg**x**\n  --flag\n```\n2. Run *it*"


def test_starred_keeps_blank_lines_inside_code() -> None:
    assert to_starred("```\na\n\n\n\nb\n```") == "```\na\n\n\n\nb\n```"


@pytest.mark.parametrize(
    "code",
    ["`a**b**c`", "`__init__`", "`[t](u)`", "`~~x~~`", "`2*3*4`", "`# not heading`"],
)
def test_starred_inline_code_is_untouched(code: str) -> None:
    assert to_starred(f"use {code} here") == f"use {code} here"


def test_starred_double_backtick_code_becomes_single() -> None:
    assert to_starred("run ``ls -la`` now") == "run `ls -la` now"
    assert to_starred("a `` b`c `` d") == "a `` b`c `` d"  # holds a backtick: kept as is


def test_starred_lists_and_quotes() -> None:
    markdown = "* one\n+ two\n- three\n  * nested *it*\n1. first\n2) second\n> **Tip:** drink water\n> > nested"
    assert to_starred(markdown) == (
        "- one\n- two\n- three\n  - nested _it_\n1. first\n2) second\n> *Tip:* drink water\n> nested"
    )


@pytest.mark.parametrize(
    "text",
    [
        "https://x.com/a_b_c",
        "see https://x.com/a_b_c_d and https://y.org/x*y*z ok",
        "https://x.com/some__path__here",
        "http://x.com/~user~/page",
        "www.example.com/a_b_c",
        "(https://x.com/a_b)",
        "snake_case_name and other_snake_words",
        "file_name_v2.txt",
        "2*3*4 = 24",
        "a * b * c",
        "x*y*z",
        "price: 5 * 3",
        "2 ~ 3 ~ 4",
        "user@example_host.com",
    ],
)
def test_starred_does_not_mangle_urls_snake_case_or_math(text: str) -> None:
    assert to_starred(text) == text
    assert to_plain(text) == text


def test_starred_bold_url_keeps_the_url_whole() -> None:
    assert to_starred("**https://x.com/a_b**.") == "*https://x.com/a_b*."
    assert to_starred("_see https://x.com/a_b_c_") == "_see https://x.com/a_b_c_"


def test_starred_escapes_are_literal() -> None:
    assert to_starred(r"\*not italic\* and 5 \* 3") == "*not italic* and 5 * 3"


def test_starred_collapses_blank_lines_and_trims() -> None:
    assert to_starred("\n\n  \nHello   \n\n\n\n\nWorld\n\n") == "Hello\n\nWorld"
    assert to_starred("") == ""
    assert to_starred("\r\n**a**\r\nb") == "*a*\nb"


def test_starred_unmatched_markers_stay_literal() -> None:
    assert to_starred("**not closed") == "**not closed"
    assert to_starred("a ~~~ b ~~~") == "a ~~~ b ~~~"
    assert to_starred("`unclosed code") == "`unclosed code"


# ---------------------------------------------------------------------------------------
# to_plain, shape_markdown, format_for
# ---------------------------------------------------------------------------------------


def test_plain_strips_formatting() -> None:
    markdown = (
        "# Hours\n\n**Open** *daily* ~~except~~ `Sunday`.\n"
        "See [the site](https://x.com/a_b) or ![map](https://x.com/m.png).\n\n"
        "* one\n> quoted **text**\n\n| A | B |\n|---|---|\n| 1 | **2** |\n\n---\n\n```sh\nls *.txt\n```"
    )
    assert to_plain(markdown) == (
        "Hours\n\nOpen daily except Sunday.\n"
        "See the site (https://x.com/a_b) or map: https://x.com/m.png.\n\n"
        "- one\nquoted text\n\n- A: 1, B: 2\n\nls *.txt"
    )


def test_shape_markdown_trims_and_collapses_blank_lines_outside_code() -> None:
    markdown = "\n\n# Title\n\n\n\nBody **kept** [x](https://y)\r\n\r\n\r\n```\na\n\n\n\nb\n```\n\n\n"
    assert shape_markdown(markdown) == "# Title\n\nBody **kept** [x](https://y)\n\n```\na\n\n\n\nb\n```"


def test_format_for_dispatches_on_dialect() -> None:
    text = "**Hi** [x](https://y.z)\n\n\n\nbye"
    assert format_for(text, "starred") == to_starred(text) == "*Hi* x (https://y.z)\n\nbye"
    assert format_for(text, "plain") == to_plain(text) == "Hi x (https://y.z)\n\nbye"
    assert format_for(text, "markdown") == shape_markdown(text) == "**Hi** [x](https://y.z)\n\nbye"


def test_format_for_rejects_unknown_dialect_and_non_text() -> None:
    with pytest.raises(ValueError, match="dialect must be one of starred, markdown, plain, or a Dialect; got 'html'"):
        format_for("x", "html")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="text must be a str; got bytes"):
        format_for(b"x", "plain")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="markdown must be a str; got NoneType"):
        to_starred(None)  # type: ignore[arg-type]


def test_a_plugin_builds_its_own_dialect_from_markup() -> None:
    slashes = Dialect("slashes", Markup(strong="*", em="/", quote="| ", code=True))
    assert format_for("**Hi** *there*\n> quoted", slashes) == "*Hi* /there/\n| quoted"
    parts = shape_reply("x", dialect=slashes, max_length=None, citations=[{"title": "T", "url": "https://t.co"}])
    assert parts == ["x\n\n/Sources:/\n- T: https://t.co"]


def test_channels_declare_their_dialect_in_their_capabilities() -> None:
    # Core names no channel: the messaging channel picks core's starred dialect itself.
    from callable_agents.plugins.whatsapp import CAPABILITIES

    assert as_dialect(CAPABILITIES.formatting) is STARRED


# ---------------------------------------------------------------------------------------
# split_message: examples
# ---------------------------------------------------------------------------------------


def test_short_text_is_one_stripped_part_and_blank_text_none() -> None:
    assert split_message("  hello  \n", 20) == ["hello"]
    assert split_message("", 20) == []
    assert split_message(" \n\n \t", 20) == []


def test_split_prefers_paragraphs_then_lines_then_sentences_then_words() -> None:
    paragraphs = "First paragraph here. It goes on.\n\nSecond paragraph is here."
    assert split_message(paragraphs, 50) == ["First paragraph here. It goes on.", "Second paragraph is here."]
    lines = "Line one is here and\nline two is here too and more"
    assert split_message(lines, 40) == ["Line one is here and", "line two is here too and more"]
    sentences = "One sentence here. Another one follows and then some"
    assert split_message(sentences, 40) == ["One sentence here.", "Another one follows and then some"]
    words = "alpha beta gamma delta epsilon zeta eta theta"
    assert split_message(words, 25) == ["alpha beta gamma delta", "epsilon zeta eta theta"]


def test_split_packs_several_paragraphs_per_part() -> None:
    text = "\n\n".join(f"Paragraph {n}." for n in range(10))
    parts = split_message(text, 40)
    assert parts == [
        "Paragraph 0.\n\nParagraph 1.\n\nParagraph 2.",  # exactly 40
        "Paragraph 3.\n\nParagraph 4.\n\nParagraph 5.",
        "Paragraph 6.\n\nParagraph 7.\n\nParagraph 8.",
        "Paragraph 9.",
    ]


def test_split_sentence_end_after_closing_marker_counts() -> None:
    assert split_message("Read *this first.* Then the rest of it all", 30) == ["Read *this first.*", "Then the rest of it all"]


@pytest.mark.parametrize(
    "span",
    [
        "*bold words here*",
        "**bold words here**",
        "_italic words here_",
        "__bold words here__",
        "~strike words here~",
        "~~strike words here~~",
        "`code words here`",
        "```mono words here```",
        "[link words here](https://x.com/a_b)",
        "![alt words here](https://x.com/i.png)",
    ],
)
def test_split_never_breaks_a_span_that_fits(span: str) -> None:
    text = f"some leading words {span} and trailing words after"
    for limit in range(max(20, len(span)), len(text) + 1):
        parts = split_message(text, limit)
        assert any(span in part for part in parts), (limit, parts)
        assert all(len(part) <= limit for part in parts)


def test_split_keeps_a_code_block_whole_when_it_fits() -> None:
    block = "```python\ndef f(x):\n    return x * 2\n```"
    text = f"Intro line here.\n{block}\nOutro line here."
    for limit in range(len(block), len(text)):
        parts = split_message(text, limit)
        assert block in parts or any(block in part for part in parts), (limit, parts)


def test_split_overlong_word_is_cut_at_the_limit() -> None:
    assert split_message("a " + "x" * 45 + " b", 20) == ["a", "x" * 20, "x" * 20, "x" * 5, "b"]


def test_split_overlong_url_is_cut_at_the_limit() -> None:
    url = "https://example.com/" + "a_b/" * 10
    parts = split_message(f"go {url} now", 20)
    assert parts[0] == "go" and parts[-1] == "now"
    assert "".join(parts[1:-1]) == url
    assert all(len(part) <= 20 for part in parts)


def test_split_overlong_bold_is_closed_and_reopened() -> None:
    parts = split_message("Hi *one two three four five six* end", 20)
    assert parts == ["Hi", "*one two three four*", "*five six*", "end"]


def test_split_overlong_double_marker_span_and_nested_spans() -> None:
    assert split_message("**alpha _beta gamma_ delta epsilon**", 22) == ["**alpha _beta gamma_**", "**delta epsilon**"]
    assert split_message("**alpha _beta gamma_ delta epsilon**", 20) == ["**alpha _beta_**", "**_gamma_ delta**", "**epsilon**"]


def test_split_overlong_word_inside_bold_keeps_markers_balanced() -> None:
    parts = split_message("*" + "a" * 30 + "*", 20)
    assert parts == ["*" + "a" * 18 + "*", "*" + "a" * 12 + "*"]


def test_split_overlong_code_block_is_refenced_with_its_language() -> None:
    block = "```python\n" + "\n".join(f"line_{n} = {n}" for n in range(8)) + "\n    indented = True\n```"
    parts = split_message(block, 60)
    assert all(len(part) <= 60 for part in parts)
    assert all(part.startswith("```python\n") and part.endswith("\n```") for part in parts)
    inner = [line for part in parts for line in part.split("\n")[1:-1]]
    assert inner == block.split("\n")[1:-1]  # every code line, indentation kept


def test_split_overlong_link_text_repeats_the_url() -> None:
    parts = split_message("[one two three four five six](https://x.co)", 30)
    assert parts == ["[one two three](https://x.co)", "[four five six](https://x.co)"]


def test_split_link_whose_url_cannot_fit_is_cut_raw() -> None:
    text = "[a b](https://example.com/" + "p" * 40 + ")"
    parts = split_message(text, 20)
    assert "".join(parts) == text
    assert all(len(part) <= 20 for part in parts)


def test_split_counts_python_characters_and_keeps_graphemes() -> None:
    emoji = "😀" * 30  # one Python character each (two UTF-16 units)
    assert split_message(emoji, 20) == ["😀" * 20, "😀" * 10]
    accented = "e\u0301" * 15  # e + combining acute: never separated
    parts = split_message(accented, 21)
    assert [len(part) for part in parts] == [20, 10]
    assert all(not unicode_starts_with_mark(part) for part in parts)


def unicode_starts_with_mark(text: str) -> bool:
    import unicodedata

    return unicodedata.category(text[0]).startswith("M")


def emoji_reply(code_points: int) -> str:
    """A reply of ``code_points`` code points, emoji-heavy (most of them beyond the BMP)."""
    words = ["Great", "😀😀😀", "🎉🎉", "open", "👍🏽👍🏽", "🇪🇸🇪🇸", "at", "7:00!", "😍🥐🥖"]
    text, index = "", 0
    while len(text) < code_points:
        text += words[index % len(words)] + " "
        index += 1
    return text[:code_points - 1] + "x"


def test_a_1600_code_point_emoji_reply_fits_1600_utf16_units_per_part() -> None:
    reply = emoji_reply(1600)
    assert len(reply) == 1600 and utf16_length(reply) > 2000
    assert split_message(reply, 1600) == [reply]  # by code points it is one part ...
    parts = split_message(reply, 1600, "utf16")
    assert len(parts) >= 2  # ... which Twilio may refuse (21617) if it counts UTF-16 units
    assert all(utf16_length(part) <= 1600 and len(part) <= 1600 for part in parts)
    assert " ".join(parts).split() == reply.split()  # every word, in order, none cut
    emoji_only = "😀" * 1600
    parts = split_message(emoji_only, 1600, "utf16")
    assert [utf16_length(part) for part in parts] == [1600, 1600]


def test_utf16_split_keeps_graphemes_and_spans() -> None:
    flags = "🇪🇸" * 30  # a flag is two code points, four UTF-16 units; no whitespace at all
    parts = split_message(flags, 40, "utf16")
    assert "".join(parts) == flags and all(utf16_length(part) <= 40 for part in parts)
    assert all(len(part) % 2 == 0 for part in parts)  # no flag cut in half
    bold = "*" + " ".join(["😀😀😀"] * 20) + "*"
    parts = split_message(bold, 40, "utf16")
    assert all(utf16_length(part) <= 40 and part.startswith("*") and part.endswith("*") for part in parts)


@given(st.lists(st.sampled_from(["a", "word", "😀", "👍🏽", "**b**", "\n\n", "🎉🎉🎉", "é"]), max_size=200),
       st.integers(min_value=20, max_value=120))
@PROPERTY_SETTINGS
def test_utf16_parts_fit_the_limit_in_both_counts(tokens: list[str], limit: int) -> None:
    text = " ".join(tokens)
    parts = split_message(text, limit, "utf16")
    assert all(0 < len(part) <= limit and utf16_length(part) <= limit for part in parts)
    assert "".join("".join(parts).split()).replace("*", "") == "".join(text.split()).replace("*", "")


def test_split_rejects_an_unknown_length_unit() -> None:
    with pytest.raises(ValueError, match="unit must be one of code_points, utf16; got 'bytes'"):
        split_message("text", 100, "bytes")  # type: ignore[arg-type]


def test_shape_reply_counts_in_the_channels_length_unit() -> None:
    from callable_agents.plugins.whatsapp import CAPABILITIES

    assert CAPABILITIES.length_unit == "utf16"
    reply = emoji_reply(1600)
    assert len(shape_reply(reply, dialect="plain", max_length=1600)) == 1
    parts = shape_reply(reply, dialect="plain", max_length=1600, length_unit=CAPABILITIES.length_unit)
    assert len(parts) >= 2 and all(utf16_length(part) <= 1600 for part in parts)


@pytest.mark.parametrize("limit", [19, 0, -5])
def test_split_rejects_small_limits(limit: int) -> None:
    with pytest.raises(ValueError, match=rf"limit must be an integer >= 20; got {limit}"):
        split_message("text", limit)


@pytest.mark.parametrize("limit", [True, 20.5, "100", None])
def test_split_rejects_non_integer_limits(limit: object) -> None:
    with pytest.raises(TypeError, match="limit must be an integer >= 20"):
        split_message("text", limit)  # type: ignore[arg-type]


def test_split_rejects_non_text() -> None:
    with pytest.raises(TypeError, match="text must be a str; got list"):
        split_message(["a"], 100)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------
# shape_reply
# ---------------------------------------------------------------------------------------

CITATIONS = [
    {"title": "Opening hours", "url": "https://clinic.example/hours"},
    {"title": "Hours (again)", "url": "https://clinic.example/hours"},
    {"title": "No link"},
    {"title": "Empty", "url": ""},
    {"title": "Sneaky", "url": "javascript:alert(1)"},
    {"title": "Prices [2025]", "url": "https://clinic.example/prices_(all)"},
    {"url": "https://clinic.example/faq"},
]


def test_shape_reply_starred_with_sources() -> None:
    parts = shape_reply("We open at **9am**.", dialect="starred", max_length=None, citations=CITATIONS)
    assert parts == [
        "We open at *9am*.\n\n_Sources:_\n"
        "- Opening hours: https://clinic.example/hours\n"
        "- Prices [2025]: https://clinic.example/prices_(all)\n"
        "- https://clinic.example/faq"
    ]


def test_shape_reply_markdown_with_sources() -> None:
    parts = shape_reply("We open at **9am**.", dialect="markdown", max_length=None, citations=CITATIONS)
    assert parts == [
        "We open at **9am**.\n\nSources:\n"
        "- [Opening hours](https://clinic.example/hours)\n"
        "- [Prices \\[2025\\]](https://clinic.example/prices_%28all%29)\n"
        "- [https://clinic.example/faq](https://clinic.example/faq)"
    ]


def test_shape_reply_plain_with_sources_and_long_titles() -> None:
    citations = [{"title": "  A   very\nlong " + "t" * 200, "url": "https://x.example/a"}]
    (part,) = shape_reply("Hi", dialect="plain", max_length=None, citations=citations)
    heading, line = part.split("\n\n")[1].split("\n")
    assert heading == "Sources:"
    assert line.startswith("- A very long ttt") and line.endswith("…: https://x.example/a")
    assert len(line) < 130


def test_shape_reply_without_citations_or_when_hidden() -> None:
    assert shape_reply("**x**", dialect="starred", max_length=None) == ["*x*"]
    assert shape_reply("**x**", dialect="starred", max_length=None, citations=CITATIONS, show_citations=False) == ["*x*"]
    assert shape_reply("**x**", dialect="starred", max_length=None, citations=[{"title": "no url"}]) == ["*x*"]
    assert shape_reply("   ", dialect="plain", max_length=100) == []
    assert shape_reply("", dialect="plain", max_length=None, citations=CITATIONS[:1]) == [
        "Sources:\n- Opening hours: https://clinic.example/hours"
    ]


def test_shape_reply_splits_body_and_sources_within_max_length() -> None:
    body = "\n\n".join(f"Paragraph {n} has **several** words in it." for n in range(60))
    parts = shape_reply(body, dialect="starred", max_length=1600, citations=CITATIONS)
    assert len(parts) > 1
    assert all(0 < len(part) <= 1600 for part in parts)
    joined = "\n\n".join(parts)
    assert joined.split() == to_starred(body).split() + [
        "_Sources:_",
        "-",
        "Opening",
        "hours:",
        "https://clinic.example/hours",
        "-",
        "Prices",
        "[2025]:",
        "https://clinic.example/prices_(all)",
        "-",
        "https://clinic.example/faq",
    ]
    assert parts[-1].endswith(
        "_Sources:_\n"
        "- Opening hours: https://clinic.example/hours\n"
        "- Prices [2025]: https://clinic.example/prices_(all)\n"
        "- https://clinic.example/faq"
    )


@pytest.mark.parametrize("max_length", [0, 19, True, 100.0, "1600"])
def test_shape_reply_rejects_bad_max_length(max_length: object) -> None:
    with pytest.raises(ValueError, match="max_length must be None or an integer >= 20"):
        shape_reply("x", dialect="plain", max_length=max_length)  # type: ignore[arg-type]


def test_shape_reply_rejects_bad_dialect_and_citations() -> None:
    with pytest.raises(ValueError, match="dialect must be one of"):
        shape_reply("x", dialect="sms", max_length=None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="citations must be a list of mappings or None; got str"):
        shape_reply("x", dialect="plain", max_length=None, citations="https://x")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"citations\[1\] must be a mapping"):
        shape_reply("x", dialect="plain", max_length=None, citations=[{"url": "https://a"}, "https://b"])  # type: ignore[list-item]
    with pytest.raises(TypeError, match=r"citations\[0\]\.url must be a string; got int"):
        shape_reply("x", dialect="plain", max_length=None, citations=[{"url": 5}])


# ---------------------------------------------------------------------------------------
# Speed and purity
# ---------------------------------------------------------------------------------------

REPLY_PARAGRAPH = (
    "Thanks for asking! Our **clinic** is open Monday to Friday from 9am to 5pm, and on Saturdays from "
    "10am to 2pm. You can book online at https://example.com/book_now or by calling us. We accept most "
    "insurance plans, including *Blue Cross* and Aetna. Please bring your ID and arrive early.\n\n"
    "### What to bring\n\n- Your insurance card\n- A list of current medications\n\n"
    "| Item | Cost |\n|---|---|\n| Visit | $40 |\n\n"
    "If you have questions about billing, see [our billing page](https://example.com/billing) or reply "
    "here and a member of staff will get back to you within one business day. `Ref: A_1`.\n\n"
)


def _best_time(function: Callable[[], object], runs: int = 15) -> float:
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - started)
    return best


@pytest.mark.parametrize("dialect", ["starred", "markdown", "plain"])
def test_a_20kb_reply_shapes_in_well_under_5ms(dialect: str) -> None:
    reply = (REPLY_PARAGRAPH * (20_000 // len(REPLY_PARAGRAPH) + 1))[:20_000]
    citations = [{"title": f"Doc {n}", "url": f"https://example.com/{n}"} for n in range(5)]
    parts = shape_reply(reply, dialect=dialect, max_length=1600, citations=citations)  # type: ignore[arg-type]
    assert len(parts) >= 12 and all(len(part) <= 1600 for part in parts)
    elapsed = _best_time(lambda: shape_reply(reply, dialect=dialect, max_length=1600, citations=citations))  # type: ignore[arg-type]
    assert elapsed < 0.005, f"{dialect}: {elapsed * 1000:.2f} ms"


@pytest.mark.parametrize(
    "hostile",
    [
        "*a " * 3500,
        "_a " * 3500,
        "[a " * 3500,
        "`a " * 3500,
        "~~a " * 2500,
        "**x** " * 1700,
        "*_~`[" * 2000,
        "[a](b " * 1700,
        "https://a.b/c_d* " * 600,
        "x" * 10_000,
        "*" + "ab " * 3500 + "*",
        "```\n" + "a b c\n" * 1700 + "```",
        "a" + " " * 10_000 + "b",
        "\n" * 10_000 + "a",
    ],
    ids=lambda text: repr(text[:12]),
)
def test_hostile_10kb_inputs_stay_linear(hostile: str) -> None:
    # Quadratic behaviour on 10 kB would take seconds on every run; linear takes milliseconds.
    # The best of three: a busy machine pausing the process once is not the code's doing.
    for dialect in ("starred", "markdown", "plain"):
        elapsed = float("inf")
        for _ in range(3):
            started = time.perf_counter()
            parts = shape_reply(hostile, dialect=dialect, max_length=1600)  # type: ignore[arg-type]
            elapsed = min(elapsed, time.perf_counter() - started)
        assert elapsed < 0.5, f"{dialect}: {elapsed * 1000:.0f} ms"
        assert all(0 < len(part) <= 1600 for part in parts)


def test_formatting_imports_only_the_standard_library() -> None:
    # Every module of the package: the standard library and one another, nothing else.
    for module in sorted(Path(callable_agents.core.reply.__file__).parent.glob("*.py")):
        tree = ast.parse(module.read_text())
        imported = {
            (node.module or "") if isinstance(node, ast.ImportFrom) else alias.name
            for node in ast.walk(tree)
            if isinstance(node, (ast.Import, ast.ImportFrom))
            for alias in node.names
        }
        outside = {name for name in imported if not name.startswith("callable_agents.core.reply.")}
        roots = {name.split(".")[0] for name in outside}
        assert roots <= set(sys.stdlib_module_names) | {"__future__"}, (module.name, outside)


# ---------------------------------------------------------------------------------------
# Property tests
# ---------------------------------------------------------------------------------------

WORD_CHARS = string.ascii_letters + string.digits + "éüßñ中文😀"
# Mostly words from a vocabulary (one draw each: fast), sometimes arbitrary ones.
VOCABULARY = (
    "a an the we open at 9am on Monday clinic book now price 42 2024 x1 B2B café über straße niño "
    "中文 粗体 😀 👍🏽 e\u0301te I Z q"
).split()
words = st.one_of(*[st.sampled_from(VOCABULARY)] * 5, st.text(alphabet=WORD_CHARS, min_size=1, max_size=12))
ascii_words = st.sampled_from(["a", "b2", "name", "case", "v2", "id", "x", "snake"])
url_segments = st.one_of(
    st.sampled_from(["a_b", "x*y", "c-d", "e~f", "q_1_z", "path", "_lead", "my__dir", "a*b*c", "z", "Foo_(bar)"]),
    st.text(alphabet=string.ascii_lowercase + string.digits + "_*-~", min_size=1, max_size=10).map(
        lambda segment: segment + "z"  # end on a letter, as real paths mostly do
    ),
)
urls = st.builds(
    lambda scheme, host, segments, query: f"{scheme}{host}.com/" + "/".join(segments) + query,
    st.sampled_from(["https://", "http://", "https://www.", "www."]),
    ascii_words,
    st.lists(url_segments, max_size=4),
    st.sampled_from(["", "?a_b=1", "?q=x*y&r=2"]),
)
snake_words = st.lists(ascii_words, min_size=2, max_size=4).map("_".join)
math = st.sampled_from(["2*3*4", "10*20*30*4", "1*2*3", "x*y*z", "a*b"])
phrases = st.lists(words, min_size=1, max_size=4).map(" ".join)
punctuation = st.sampled_from(["", "", "", ".", ",", "!", "?", ":"])
SEPARATORS = st.sampled_from([" ", " ", " ", "  ", "\n", "\n\n", " \n", "\n\n\n"])


def _wrap(kind: str, phrase: str, url: str) -> str:
    if kind == "link":
        return f"[{phrase}]({url})"
    if kind == "image":
        return f"![{phrase}]({url})"
    if kind == "nested":
        return f"**{phrase} _{phrase}_ {phrase}**"
    return f"{kind}{phrase}{kind}"


span_atoms = st.builds(
    _wrap,
    st.sampled_from(["*", "**", "_", "__", "~", "~~", "`", "```", "link", "image", "nested"]),
    phrases,
    urls,
)
code_content = st.lists(
    st.one_of(
        *[st.sampled_from(["x = a**b", "f(_y_)", "[t](u)", "~~s~~ ~t~", "# c", "a*b*c", "ok", "__init__"])] * 3,
        st.text(alphabet=string.ascii_letters + " *_~[]()#", min_size=1, max_size=20).map(str.strip).filter(bool),
    ),
    min_size=1,
    max_size=4,
)
code_atoms = st.builds(lambda lines: "`" + " ".join(lines) + "`", code_content)
block_atoms = st.builds(
    lambda language, lines: f"```{language}\n" + "\n".join("  " + line if n % 2 else line for n, line in enumerate(lines)) + "\n```",
    st.sampled_from(["", "python", "js"]),
    code_content,
)
inline_atoms = st.one_of(words, words, words, urls, snake_words, math, span_atoms, code_atoms)


inline_with_punctuation = st.tuples(inline_atoms, punctuation).map("".join)
any_atom = st.one_of(*[inline_with_punctuation] * 12, block_atoms)  # about one code block in 13 atoms


@st.composite
def documents(draw: st.DrawFn, max_atoms: int = 30) -> tuple[list[str], str]:
    """A text made of atoms (words, URLs, spans, code blocks) and whitespace separators.
    Returns the atoms (each with any trailing punctuation) and the joined text."""
    count = draw(st.integers(1, max_atoms))  # uniform sizes: long texts are common, not rare
    atoms = draw(st.lists(any_atom, min_size=count, max_size=count))
    separators = draw(st.lists(SEPARATORS, min_size=len(atoms), max_size=len(atoms)))
    pieces: list[str] = []
    for index, atom in enumerate(atoms):
        if index:
            separator = separators[index]
            if "\n" not in separator and (atom.startswith("```") and "\n" in atom or atoms[index - 1].endswith("\n```")):
                separator = "\n"  # a code block sits on lines of its own
            pieces.append(separator)
        pieces.append(atom)
    return atoms, "".join(pieces)


limits = st.one_of(st.integers(20, 120), st.integers(20, 2000))


def assert_parts_are_whole_atoms(parts: list[str], atoms: list[str]) -> None:
    """Each part is a run of consecutive whole atoms, and the runs cover every atom in order."""
    atom_tokens = [atom.split() for atom in atoms]
    index = 0
    for part in parts:
        expected: list[str] = []
        first = index
        part_tokens = part.split()
        while len(expected) < len(part_tokens) and index < len(atoms):
            expected.extend(atom_tokens[index])
            index += 1
        assert part_tokens == expected, f"part {part!r} is not the whole atoms {atoms[first:index]!r}"
    assert index == len(atoms), f"atoms lost: {atoms[index:]!r}"


@PROPERTY_SETTINGS
@given(documents(), limits)
def test_property_split_keeps_words_urls_and_spans_whole(document: tuple[list[str], str], limit: int) -> None:
    atoms, text = document
    limit = max(limit, max(len(atom) for atom in atoms))  # every atom fits: none may be broken
    parts = split_message(text, limit)
    assert parts, "a non-empty text gives at least one part"
    for part in parts:
        assert 0 < len(part) <= limit
        assert part == part.strip()
    assert " ".join(parts).split() == text.split()  # every word, in order
    assert_parts_are_whole_atoms(parts, atoms)


@PROPERTY_SETTINGS
@given(
    st.lists(
        st.one_of(
            words,
            urls,
            # often longer than the limit; no `*_~` (a marker pair inside a token is a span)
            st.text(alphabet=WORD_CHARS + "/.-", min_size=20, max_size=400),
        ),
        min_size=1,
        max_size=60,
    ),
    st.lists(SEPARATORS, min_size=60, max_size=60),
    st.integers(20, 120),
)
def test_property_only_overlong_tokens_are_cut(tokens: list[str], separators: list[str], limit: int) -> None:
    text = "".join(token + separator for token, separator in zip(tokens, separators, strict=False)).strip()
    parts = split_message(text, limit)
    assert all(0 < len(part) <= limit and part == part.strip() for part in parts)
    produced = [token for part in parts for token in part.split()]
    position = 0
    for token in text.split():
        if len(token) <= limit:
            assert produced[position] == token, f"{token!r} was broken or lost"
            position += 1
            continue
        rebuilt = ""
        while rebuilt != token:  # an over-long token comes out as consecutive pieces
            piece = produced[position]
            assert len(piece) <= limit and token.startswith(rebuilt + piece), (token, rebuilt, piece)
            rebuilt += piece
            position += 1
    assert position == len(produced)


SPAN_MARKERS = {
    "*": ("*", "*"),
    "**": ("**", "**"),
    "_": ("_", "_"),
    "__": ("__", "__"),
    "~": ("~", "~"),
    "~~": ("~~", "~~"),
    "`": ("`", "`"),
    "link": ("[", "](https://x.co/a_b)"),
}


@PROPERTY_SETTINGS
@given(
    st.sampled_from(sorted(SPAN_MARKERS)),
    st.lists(st.text(alphabet=string.ascii_letters + "éß中", min_size=1, max_size=10), min_size=2, max_size=80),
    st.lists(words, max_size=5),
    st.lists(words, max_size=5),
    st.integers(40, 200),
)
def test_property_overlong_spans_are_closed_and_reopened(
    kind: str, inside: list[str], before: list[str], after: list[str], limit: int
) -> None:
    opener, closer = SPAN_MARKERS[kind]
    span = opener + " ".join(inside) + closer
    text = " ".join([*before, span, *after])
    parts = split_message(text, limit)
    assert all(0 < len(part) <= limit for part in parts)
    produced: list[str] = []
    for part in parts:
        if part.count(opener) or part.count(closer):
            # balanced: every part holding span words opens and closes the span
            assert part.count(opener) == part.count(closer) if opener != closer else part.count(opener) % 2 == 0, part
        for token in part.split():
            stripped = token.removeprefix(opener).removesuffix(closer)
            if stripped:
                produced.append(stripped)
    assert produced == [*before, *inside, *after]
    if len(span) > limit:
        assert len(parts) > 1


@st.composite
def code_blocks_and_limits(draw: st.DrawFn) -> tuple[list[str], int]:
    lines = draw(st.lists(st.text(alphabet=string.ascii_letters + " *_[]", min_size=1, max_size=30), min_size=2, max_size=40))
    while len("\n".join(lines)) < 40:
        lines.append("padding = [a, b]")
    return lines, draw(st.integers(30, len("\n".join(lines)) + len("```py\n\n```") - 1))


@PROPERTY_SETTINGS
@given(code_blocks_and_limits())
def test_property_overlong_code_blocks_are_refenced(block_and_limit: tuple[list[str], int]) -> None:
    lines, limit = block_and_limit
    block = "```py\n" + "\n".join(lines) + "\n```"
    assert len(block) > limit
    parts = split_message("Intro.\n" + block, limit)
    assert all(0 < len(part) <= limit for part in parts)
    assert parts[0] == "Intro."
    for part in parts[1:]:
        assert part.startswith("```py\n") and part.endswith("\n```"), part
    inner = [part[len("```py\n") : -len("\n```")] for part in parts[1:]]
    # all the code, in order (lines longer than a part are cut: compare characters)
    assert "".join("".join(inner).split()) == "".join(block[len("```py\n") : -len("\n```")].split())
    if all(len(line) <= limit - len("```py\n\n```") for line in lines):
        produced = [line.rstrip() for chunk in inner for line in chunk.split("\n")]
        assert [line for line in produced if line] == [line.rstrip() for line in lines if line.strip()]


# Formatting property: the generator knows what each atom must become.

FORMATTED = {
    "**": ("*", ""),
    "__": ("*", ""),
    "*": ("_", ""),
    "_": ("_", ""),
    "~~": ("~", ""),
}


@st.composite
def markdown_documents(draw: st.DrawFn) -> tuple[str, str, str]:
    """(markdown, expected WhatsApp text, expected plain text)."""
    markdown: list[str] = []
    starred: list[str] = []
    plain: list[str] = []
    for index in range(draw(st.integers(1, 15))):
        if index:
            separator = draw(st.sampled_from([" ", " ", "\n", "\n\n"]))
            for out in (markdown, starred, plain):
                out.append(separator)
        choice = draw(st.integers(0, 9))
        suffix = draw(punctuation)
        if choice <= 4:
            atom = draw(st.one_of(words, urls, snake_words, math))
            same = atom + suffix
            markdown.append(same)
            starred.append(same)
            plain.append(same)
        elif choice <= 6:
            marker = draw(st.sampled_from(sorted(FORMATTED)))
            phrase = draw(phrases)
            starred_marker, plain_marker = FORMATTED[marker]
            markdown.append(f"{marker}{phrase}{marker}{suffix}")
            starred.append(f"{starred_marker}{phrase}{starred_marker}{suffix}")
            plain.append(f"{plain_marker}{phrase}{plain_marker}{suffix}")
        elif choice == 7:
            phrase, url = draw(phrases), draw(urls)
            markdown.append(f"[{phrase}]({url}){suffix}")
            starred.append(f"{phrase} ({url}){suffix}")
            plain.append(f"{phrase} ({url}){suffix}")
        elif choice == 8:
            code = " ".join(draw(code_content))
            markdown.append(f"`{code}`{suffix}")
            starred.append(f"`{code}`{suffix}")
            plain.append(f"{code}{suffix}")
        else:
            phrase = draw(phrases)
            markdown.append(f"***{phrase}***{suffix}")
            starred.append(f"_*{phrase}*_{suffix}")
            plain.append(f"{phrase}{suffix}")
    return "".join(markdown), "".join(starred), "".join(plain)


@PROPERTY_SETTINGS
@given(markdown_documents())
def test_property_conversion_rules(document: tuple[str, str, str]) -> None:
    markdown, starred, plain = document
    assert to_starred(markdown) == starred
    assert to_plain(markdown) == plain
    assert shape_markdown(markdown) == markdown


@settings(max_examples=100, deadline=None)
@given(documents(max_atoms=20), limits, st.sampled_from(["starred", "markdown", "plain"]))
def test_property_shape_reply_parts_fit(document: tuple[list[str], str], limit: int, dialect: str) -> None:
    _atoms, text = document
    parts = shape_reply(text, dialect=dialect, max_length=limit, citations=[{"title": "T", "url": "https://t.co/x"}])  # type: ignore[arg-type]
    assert parts and all(0 < len(part) <= limit and part == part.strip() for part in parts)
    assert "https://t.co/x" in parts[-1]
