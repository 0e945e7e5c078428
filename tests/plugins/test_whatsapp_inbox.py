"""What the WhatsApp channel tells the inbox: its 24-hour window, its template, Twilio's codes in words."""

from __future__ import annotations

from callable_agents.plugins.whatsapp import WHATSAPP
from callable_agents.plugins.whatsapp.inbox import describe_error, reply_templates

TEMPLATE = "HX" + "4c" * 16


def test_the_window_template_and_error_words_are_channel_type_properties() -> None:
    assert WHATSAPP.capabilities.reply_window_hours == 24
    assert WHATSAPP.reply_templates is reply_templates and WHATSAPP.describe_delivery_error is describe_error
    assert describe_error("63016") == "outside the 24-hour window: only an approved template can reach the customer now"
    assert describe_error(" 21610 ").startswith("the customer opted out")
    assert describe_error("99999") is None


def test_the_channels_template_with_its_variables() -> None:
    config = {"sender": "whatsapp:+14155238886", "template": {"content_sid": TEMPLATE, "variables": {"1": "{name}", "2": "{reply}"}}}
    [template] = reply_templates(config)
    assert template.id == TEMPLATE and template.variables == {"1": "{name}", "2": "{reply}"} and template.takes_text
    assert not reply_templates({**config, "template": {"content_sid": TEMPLATE, "variables": {"1": "{name}"}}})[0].takes_text
    assert reply_templates({"sender": "whatsapp:+14155238886"}) == []
    assert reply_templates({"sender": "not a sender"}) == []  # a bad stored config offers nothing
