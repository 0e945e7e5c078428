"""The webhook's own form parser and signature agree with the stdlib's and twilio's."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode

from hypothesis import given, settings
from hypothesis import strategies as st
from twilio.request_validator import RequestValidator

from callable_agents.plugins.whatsapp.webhook import FormParams, _strict_pairs, twilio_signature

# Bodies as Twilio sends them, and broken ones: stray '&', '=', '+', bad and partial escapes.
raw_text = st.text(alphabet="ab=&+%2FC3A8Z9 :", max_size=40)
fields = st.lists(st.tuples(st.text(max_size=12), st.text(max_size=30)), max_size=12)


def _outcome(parse, text: str):  # type: ignore[no-untyped-def]
    try:
        return ("ok", parse(text))
    except (ValueError, UnicodeDecodeError) as exc:  # UnicodeDecodeError is a ValueError: tell them apart
        return (type(exc).__name__,)


@settings(max_examples=400)
@given(st.one_of(raw_text, fields.map(urlencode)))
def test_the_form_parser_matches_strict_parse_qsl(text: str) -> None:
    def reference(body: str) -> list[tuple[str, str]]:
        return parse_qsl(body, keep_blank_values=True, strict_parsing=True, encoding="utf-8", errors="strict", max_num_fields=500)

    assert _outcome(_strict_pairs, text) == _outcome(reference, text)


@settings(max_examples=200)
@given(fields, st.sampled_from(["https://bot.example.com/channels/whatsapp/ch_1/inbound", "https://x.test:8443/in?a=1"]))
def test_the_signature_is_twilios(pairs: list[tuple[str, str]], url: str) -> None:
    form = FormParams(pairs)  # repeated names included: every value is signed
    expected = RequestValidator("auth-token-123").compute_signature(url, form)
    assert twilio_signature("auth-token-123", url, form).decode() == expected
