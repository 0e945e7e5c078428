"""The web chat's parts on their own: config and origins, visitor tokens, rate limits, and
what of a stored message a browser is shown."""

from __future__ import annotations

import pytest

from callable_agents.core.store.agent_spec import SpecError
from callable_agents.core.bootstrap import close_runtime, open_runtime
from callable_agents.core.store.channels import validate_channel_spec
from callable_agents.core.config import Settings
from callable_agents.core.plugins import load_plugins
from callable_agents.plugins.webchat.api import public_choices, public_citations, public_media, public_message
from callable_agents.plugins.webchat.config import PageConfig, WidgetConfig, parse_origin
from callable_agents.core.limits import InProcessWindows
from callable_agents.plugins.webchat.tokens import InvalidVisitorToken, VisitorTokens

CHANNEL = "a" * 32
OTHER_CHANNEL = "b" * 32

# --------------------------------------------------------------------------- config


def test_allowed_origins_are_normalised_and_matched() -> None:
    config = WidgetConfig(
        allowed_origins=["https://Shop.Example.com:443", "http://localhost:*", "http://[::1]:8080", "https://b.example:8443"]
    )
    assert config.allowed_origins == ["https://shop.example.com", "http://localhost:*", "http://[::1]:8080", "https://b.example:8443"]
    rules = config.origin_rules()
    matches = {
        "https://shop.example.com": True,
        "https://shop.example.com:443": True,
        "http://shop.example.com": False,
        "https://shop.example.com.evil.net": False,
        "https://evil.net/https://shop.example.com": False,
        "http://localhost:3000": True,
        "http://localhost": True,
        "https://localhost:3000": False,
        "http://[::1]:8080": True,
        "http://[::1]:8081": False,
        "https://b.example:8443": True,
        "https://b.example": False,
        "null": False,
        "": False,
    }
    assert {origin: any(rule.matches(origin) for rule in rules) for origin in matches} == matches


@pytest.mark.parametrize(
    "entry",
    ["shop.example.com", "https://shop.example.com/", "https://shop.example.com/path", "ftp://shop.example.com",
     "https://user@shop.example.com", "https://shop.example.com:*:*", "https://shop.example.com:99999", "null", "*", "https://"],
)
def test_a_malformed_allowed_origin_is_refused_naming_the_entry(entry: str) -> None:
    if entry == "https://shop.example.com/":  # a trailing slash is how people paste origins; it's harmless
        assert WidgetConfig(allowed_origins=[entry]).allowed_origins == ["https://shop.example.com"]
        return
    plugins = load_plugins(autoload=False)
    with pytest.raises(SpecError) as refused:
        validate_channel_spec(
            {"name": "site", "kind": "widget", "agent": "assistant", "config": {"allowed_origins": ["https://ok.example", entry]}},
            plugins,
        )
    message = str(refused.value)
    assert "config.allowed_origins.1" in message or "config.allowed_origins[1]" in message, message
    assert "expected an origin like https://shop.example.com" in message


def test_widget_and_page_config_defaults_and_refusals() -> None:
    widget = WidgetConfig()
    assert widget.allowed_origins == [] and widget.origin_rules() == []
    assert (widget.max_message_chars, widget.messages_per_minute_per_visitor) == (2000, 20)
    assert (widget.messages_per_minute_per_ip, widget.sessions_per_minute_per_ip) == (60, 30)
    assert widget.appearance.position == "bottom-right" and widget.appearance.color == "#2563eb"
    plugins = load_plugins(autoload=False)
    for kind, config, field in (
        ("widget", {"appearance": {"color": "red"}}, "config.appearance.color"),
        ("widget", {"appearance": {"position": "top"}}, "config.appearance.position"),
        ("widget", {"max_message_chars": 0}, "config.max_message_chars"),
        ("widget", {"alowed_origins": []}, "config.alowed_origins"),
        ("page", {"color": "#12345"}, "config.color"),
        ("page", {"greeting": "x" * 501}, "config.greeting"),
        ("page", {"title": "bad\x00title"}, "config.title"),
    ):
        with pytest.raises(SpecError) as refused:
            validate_channel_spec({"name": "c", "kind": kind, "agent": "assistant", "config": config}, plugins)
        assert field in str(refused.value), (config, str(refused.value))
    assert PageConfig(title="  Bella  ").title == "Bella"


def test_parse_origin_refuses_what_is_not_an_origin() -> None:
    assert parse_origin("https://a.example") == ("https", "a.example", 443)
    assert parse_origin("http://a.example:8080") == ("http", "a.example", 8080)
    for bad in ("a.example", "javascript:alert(1)", "file:///etc/passwd", "https://a.example?x=1", "https://a.example#x",
                "https://a.exa mple", "https://a.example:port"):
        assert parse_origin(bad) is None, bad


# --------------------------------------------------------------------------- tokens


def test_visitor_tokens_verify_and_refuse_tampering() -> None:
    tokens = VisitorTokens(b"k" * 32)
    token, visitor = tokens.issue(CHANNEL)
    assert tokens.verify(token) == visitor and visitor.channel_id == CHANNEL
    assert visitor.external_user_id == f"web:{visitor.visitor_id}"
    version, channel_id, visitor_id, signature = token.split(".")
    tampered = [
        ".".join([version, OTHER_CHANNEL, visitor_id, signature]),  # moved to another channel
        ".".join([version, channel_id, "c" * 32, signature]),  # another visitor
        ".".join(["v2", channel_id, visitor_id, signature]),
        ".".join([version, channel_id, visitor_id, signature[:-1] + {"A": "B", "B": "A"}.get(signature[-1], "A")]),
        ".".join([version, channel_id, visitor_id, signature[:10] + ("x" if signature[10] != "x" else "y") + signature[11:]]),
        ".".join([version, channel_id, visitor_id]),
        token + ".extra",
        ".".join([version, channel_id.upper(), visitor_id, signature]),
        ".".join([version, channel_id, visitor_id, "!!!"]),
        "",
    ]
    for bad in tampered:
        with pytest.raises(InvalidVisitorToken):
            tokens.verify(bad)
    with pytest.raises(InvalidVisitorToken, match="signature"):
        VisitorTokens(b"x" * 32).verify(token)  # another server's key
    # Signatures whose last character differs only in base64's unused low bits are still refused.
    last = signature[-1]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    same_bits = [char for char in alphabet if alphabet.index(char) >> 2 == alphabet.index(last) >> 2 and char != last]
    for char in same_bits:
        with pytest.raises(InvalidVisitorToken):
            tokens.verify(".".join([version, channel_id, visitor_id, signature[:-1] + char]))
    assert "k" * 8 not in repr(tokens)
    with pytest.raises(ValueError):
        VisitorTokens(b"short")


async def test_tokens_from_one_process_verify_in_another_with_the_same_master_key(sqlite_settings: Settings) -> None:
    first = await open_runtime(sqlite_settings)
    second = await open_runtime(sqlite_settings)
    try:
        token, visitor = VisitorTokens.of(first).issue(CHANNEL)
        assert VisitorTokens.of(second).verify(token) == visitor
        assert VisitorTokens.of(first) is VisitorTokens.of(first)
    finally:
        await close_runtime(first)
        await close_runtime(second)


# --------------------------------------------------------------------------- rate limits


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_sliding_window_allows_the_limit_then_says_when_to_retry() -> None:
    clock = Clock()
    limiter = InProcessWindows(clock=clock)
    assert limiter.acquire_now([("visitor", 2)], 60) is None
    clock.now += 10
    assert limiter.acquire_now([("visitor", 2)], 60) is None
    clock.now += 5
    assert limiter.acquire_now([("visitor", 2)], 60) == 45  # the first hit leaves the window in 45 s
    clock.now += 44.5
    assert limiter.acquire_now([("visitor", 2)], 60) == 1  # never 0: "retry now" would be a lie
    clock.now += 0.6
    assert limiter.acquire_now([("visitor", 2)], 60) is None
    assert limiter.acquire_now([("someone else", 2)], 60) is None


def test_a_refused_request_counts_against_no_key() -> None:
    clock = Clock()
    limiter = InProcessWindows(clock=clock)
    assert limiter.acquire_now([("ip", 1)], 60) is None
    assert limiter.acquire_now([("visitor", 5), ("ip", 1)], 60) == 60  # the IP is full
    clock.now += 61
    # Had the refused request counted against "visitor", these five would not all pass.
    assert [limiter.acquire_now([("visitor", 5)], 60) for _ in range(5)] == [None] * 5
    assert limiter.acquire_now([("visitor", 5)], 60) is not None


# --------------------------------------------------------------------------- what a browser sees


def test_only_safe_citations_of_answers_are_shown() -> None:
    meta = {
        "outcome": "answered",
        "citations": [
            {"title": "Hours", "url": "https://bella.example/hours", "page": None},
            {"title": "Hours again", "url": "https://bella.example/hours"},
            {"title": "Menu", "url": "https://bella.example/menu.pdf", "page": 3},
            {"title": "x", "url": "javascript:alert(1)"},
            {"title": "x", "url": " JAVASCRIPT:alert(1)"},
            {"title": "x", "url": "data:text/html,<script>alert(1)</script>"},
            {"title": "x", "url": "//evil.example"},
            {"title": "x", "url": "https://evil.example/a b"},
            {"title": "x", "url": None},
            {"title": "x", "url": "https://x.example/" + "a" * 3000},
            "not a mapping",
            {"title": "Mail", "url": "mailto:hello@bella.example", "page": True},
        ],
    }
    assert public_citations(meta) == [
        {"url": "https://bella.example/hours", "title": "Hours", "page": None},
        {"url": "https://bella.example/menu.pdf", "title": "Menu", "page": 3},
        {"url": "mailto:hello@bella.example", "title": "Mail", "page": None},
    ]
    assert public_citations({**meta, "outcome": "fallback"}) == []
    assert public_citations({**meta, "outcome": "no_answer"}) == []
    assert public_citations(None) == []


def test_media_and_people_are_shown_safely() -> None:
    assert public_media(
        [{"url": "https://cdn.example/a.png", "content_type": "image/png"}, {"url": "javascript:x"}, {"url": "mailto:a@b.c"}, "x"]
    ) == [{"url": "https://cdn.example/a.png", "content_type": "image/png"}]
    person = public_message(
        message_id=7, author="human", text="Hi", media=[], meta={"by": "Dana"}, status="sent", created_at=None
    )
    assert person["author_name"] == "Dana"
    agent = public_message(message_id=8, author="agent", text="Hi", media=None, meta={"by": "x"}, status="sent", created_at=None)
    assert agent["author_name"] is None


def test_page_embed_origins_are_https_origins_in_canonical_form() -> None:
    assert PageConfig().embed_origins == []
    config = PageConfig(embed_origins=["https://Shop.Example.com:443", "https://shop.example.com:8443", "http://localhost:*",
                                       "http://127.0.0.1:8080"])
    assert config.embed_origins == ["https://shop.example.com", "https://shop.example.com:8443", "http://localhost:*",
                                    "http://127.0.0.1:8080"]
    plugins = load_plugins(autoload=False)
    for entry, expected in (
        ("http://shop.example.com", "expected an https origin, e.g. https://shop.example.com (plain http only for localhost and 127.0.0.1)"),
        ("https://shop.example.com/page", "expected an origin like https://shop.example.com"),
        ("https://shop.example.com; script-src *", "expected an origin like https://shop.example.com"),
        ("*", "expected an origin like https://shop.example.com"),
        ("'self'", "expected an origin like https://shop.example.com"),
        ("https://[::1]:8443", "expected a host name or IPv4 address (a Content-Security-Policy cannot name an IPv6 address)"),
    ):
        with pytest.raises(SpecError) as refused:
            validate_channel_spec(
                {"name": "c", "kind": "page", "agent": "assistant", "config": {"embed_origins": ["https://ok.example", entry]}},
                plugins,
            )
        message = str(refused.value)
        assert message.startswith("config.embed_origins[1]: " + expected), message


def test_offered_choices_reach_the_browser_as_plain_values_only() -> None:
    meta = {"choices": {"text": "Which size?", "options": [
        {"id": "choice-1", "title": "Small", "secret": "x"}, {"id": "choice-2"}, "junk", {"title": "L" * 500},
    ]}}
    assert public_choices(meta) == {"text": "Which size?", "options": [
        {"id": "choice-1", "title": "Small"}, {"id": "", "title": "L" * 200},
    ]}
    assert public_choices({"choices": {"text": "q", "options": []}}) is None
    assert public_choices({"choices": "1. a"}) is None and public_choices(None) is None
