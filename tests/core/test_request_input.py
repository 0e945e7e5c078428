"""The input-hardening layer: what Python's json accepts and our storage cannot take."""

from __future__ import annotations

import pytest

from callable_agents.core.errors import InvalidInput
from callable_agents.core.request_input import BIGINT_MAX, MAX_JSON_DEPTH, parse_int, parse_json


def test_ordinary_json_passes_untouched() -> None:
    body = '{"text": "Caf\\u00e9 \\ud83c\\udf70", "n": 12, "x": 1.5e3, "list": [1, {"a": null}]}'
    assert parse_json(body) == {"text": "Café 🍰", "n": 12, "x": 1500.0, "list": [1, {"a": None}]}


@pytest.mark.parametrize("levels", [MAX_JSON_DEPTH + 1, 1_000, 100_000])
def test_deep_nesting_is_refused_with_the_field(levels: int) -> None:
    with pytest.raises(InvalidInput, match=f"body: expected JSON nested at most {MAX_JSON_DEPTH} levels deep") as raised:
        parse_json("[" * levels + "]" * levels)
    assert raised.value.field == "body"


def test_nesting_at_the_limit_passes() -> None:
    assert parse_json("[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH) is not None


@pytest.mark.parametrize("literal", ["1" * 4_301, "1" * 33, "1." + "0" * 40, "-" + "9" * 40])
def test_long_number_literals_are_refused(literal: str) -> None:
    with pytest.raises(InvalidInput, match="body: expected numbers of at most 32 characters"):
        parse_json(f'{{"n": {literal}}}')


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_non_json_constants_are_refused(constant: str) -> None:
    with pytest.raises(InvalidInput, match=f"body: expected a JSON number, got {constant}"):
        parse_json(f"[{constant}]")


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ('{"text": "\\ud800"}', "body.text"),
        ('{"text": "ok \\udfff end"}', "body.text"),
        ('{"items": ["fine", "\\ud83c"]}', "body.items[1]"),
        ('{"\\ud800": 1}', "body.\ud800"),
        ('{"text": "a\\u0000b"}', "body.text"),
    ],
)
def test_text_a_database_cannot_store_is_refused_by_its_path(body: str, path: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        parse_json(body)
    assert raised.value.field == path
    assert str(raised.value).startswith(path + ": expected text without")


@pytest.mark.parametrize("raw", [b"\xff\xfe", b"{", b"", b"{'a': 1}"])
def test_invalid_json_names_the_body(raw: bytes) -> None:
    with pytest.raises(InvalidInput, match=r"body: expected a JSON object \(the body is not valid JSON\)"):
        parse_json(raw)


def test_integers_are_bounded_by_a_64_bit_column() -> None:
    assert parse_int(str(BIGINT_MAX), "after", default=0) == BIGINT_MAX
    assert parse_int(None, "after", default=7) == 7
    for raw in [str(BIGINT_MAX + 1), "9223372036854775808", "-1", "1e3", "x", "9" * 5_000]:
        with pytest.raises(InvalidInput, match=r"after: expected an integer 0\.\.9223372036854775807"):
            parse_int(raw, "after", default=0)
