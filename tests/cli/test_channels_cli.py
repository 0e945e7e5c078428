"""`callable channels` and Twilio verification on `callable integrations connect twilio`."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.helpers import cli_env, run_cli
from callable_agents.testing.twilio_server import FakeTwilio

ACCOUNT = "AC" + "ab" * 16
TOKEN = "f" * 32


def test_twilio_credentials_are_checked_then_the_channel_shows_its_urls(tmp_path: Path) -> None:
    with FakeTwilio() as twilio:
        twilio.add_account(ACCOUNT, TOKEN)
        env = cli_env(
            tmp_path / "data",
            CALLABLE_TWILIO_API_BASE_URL=twilio.base_url,
            CALLABLE_PUBLIC_BASE_URL="https://bot.example.com",
        )
        assert run_cli("migrate", env=env).returncode == 0
        assert run_cli("workspace", "create", "Shop", env=env).returncode == 0

        wrong = run_cli("integrations", "connect", "twilio", "--name", "tw", "--account-sid", ACCOUNT,
                        env=env, input="0" * 32 + "\n\n")
        assert wrong.returncode == 1 and "Twilio rejected" in wrong.stderr
        assert "0" * 32 not in wrong.stderr + wrong.stdout
        listed = run_cli("integrations", "list", "--json", env=env)
        assert json.loads(listed.stdout or "[]") == []  # refused credentials are not stored

        right = run_cli("integrations", "connect", "twilio", "--name", "tw", "--account-sid", ACCOUNT,
                        env=env, input=TOKEN + "\n\n")
        assert right.returncode == 0, right.stderr
        assert f"Twilio accepted the credentials for {ACCOUNT}" in right.stderr

        yaml_file = tmp_path / "shop.yaml"
        yaml_file.write_text(
            "version: 1\nworkspace: {slug: shop, name: Shop}\n"
            "agents:\n  - name: assistant\n    system_prompt: Help customers.\n"
            "channels:\n  - name: wa\n    kind: whatsapp\n    agent: assistant\n    integration: tw\n"
            "    config:\n      sender: 'whatsapp:+14155238886'\n"
            "  - name: site\n    kind: widget\n    agent: assistant\n"
            "    config:\n      allowed_origins: ['https://shop.example.com']\n"
            "  - name: public\n    kind: page\n    agent: assistant\n    slug: shop\n"
        )
        applied = run_cli("apply", "-f", str(yaml_file), env=env)
        assert applied.returncode == 0, applied.stderr
        shown = json.loads(run_cli("channels", "show", "wa", "--json", env=env).stdout)
        channel_id = shown["id"]
        assert shown["twilio_inbound_url"] == f"https://bot.example.com/channels/whatsapp/{channel_id}/inbound"
        assert shown["twilio_status_callback_url"] == f"https://bot.example.com/channels/whatsapp/{channel_id}/status"
        widget = json.loads(run_cli("channels", "show", "site", "--json", env=env).stdout)
        assert widget["script_tag"] == (
            f'<script src="https://bot.example.com/widget.js" data-channel="{widget["id"]}" async></script>'
        )
        page = json.loads(run_cli("channels", "show", "public", "--json", env=env).stdout)
        assert page["page_url"] == "https://bot.example.com/chat/shop"
        missing = run_cli("channels", "show", "nope", env=env)
        assert missing.returncode == 1 and "channel 'nope' not found" in missing.stderr


def test_a_channels_reply_policy_is_set_in_the_file_and_shown(tmp_path: Path) -> None:
    env = cli_env(tmp_path / "data", CALLABLE_PUBLIC_BASE_URL="https://bot.example.com")
    assert run_cli("migrate", env=env).returncode == 0
    yaml_file = tmp_path / "shop.yaml"
    head = (
        "version: 1\nworkspace: {slug: shop, name: Shop}\n"
        "agents:\n  - name: assistant\n    system_prompt: Help customers.\n"
        "channels:\n  - name: site\n    kind: widget\n    agent: assistant\n"
        "    config:\n      allowed_origins: ['https://shop.example.com']\n"
    )
    page = "  - name: public\n    kind: page\n    agent: assistant\n    slug: shop\n"
    yaml_file.write_text(head + "    replies: {strategy: later}\n")
    refused = run_cli("apply", "-f", str(yaml_file), env=env)
    assert refused.returncode != 0
    assert "shop.yaml:12" in refused.stderr and "replies.strategy" in refused.stderr
    assert "'interrupt', 'wait' or 'queue'" in refused.stderr

    yaml_file.write_text(head + "    replies: {strategy: wait, window_seconds: 1.5}\n" + page)
    applied = run_cli("apply", "-f", str(yaml_file), env=env)
    assert applied.returncode == 0, applied.stderr
    shown = json.loads(run_cli("channels", "show", "site", "--json", env=env).stdout)
    assert shown["replies"] == {"strategy": "wait", "window_seconds": 1.5}
    assert "replies" not in shown["config"]  # the widget's own config is the widget's
    assert "replies" in run_cli("channels", "show", "site", env=env).stdout
    page_shown = json.loads(run_cli("channels", "show", "public", "--json", env=env).stdout)
    assert page_shown["replies"] == {"strategy": "interrupt"}  # the default, shown though not set
    again = run_cli("apply", "-f", str(yaml_file), env=env)
    assert again.returncode == 0 and "unchanged channel site" in again.stdout, again.stdout  # idempotent


def test_channels_templates_lists_the_configured_one_then_the_accounts_approved(tmp_path: Path) -> None:
    with FakeTwilio() as twilio:
        twilio.add_account(ACCOUNT, TOKEN)
        ready = twilio.add_content(ACCOUNT, "order_ready", {"twilio/text": {"body": "Hi {{1}}, order {{2}} is ready"}},
                                   variables={"1": "Ana", "2": "A-17"}, approval=("order_ready", "UTILITY", "approved"))
        twilio.add_content(ACCOUNT, "promo", {"twilio/text": {"body": "Sale"}}, approval=("promo", "MARKETING", "rejected"))
        env = cli_env(tmp_path / "data", CALLABLE_TWILIO_API_BASE_URL=twilio.base_url, CALLABLE_TWILIO_CONTENT_BASE_URL=twilio.base_url)
        assert run_cli("migrate", env=env).returncode == 0
        assert run_cli("workspace", "create", "Shop", env=env).returncode == 0
        connected = run_cli("integrations", "connect", "twilio", "--name", "tw", "--account-sid", ACCOUNT, env=env, input=TOKEN + "\n\n")
        assert connected.returncode == 0, connected.stderr
        yaml_file = tmp_path / "shop.yaml"
        yaml_file.write_text(
            "version: 1\nworkspace: {slug: shop, name: Shop}\n"
            "agents:\n  - name: assistant\n    system_prompt: Help customers.\n"
            "channels:\n  - name: wa\n    kind: whatsapp\n    agent: assistant\n    integration: tw\n"
            "    config:\n      sender: 'whatsapp:+14155238886'\n"
            "      template: {content_sid: HX" + "a1" * 16 + ", variables: {'1': '{reply}'}}\n"
        )
        applied = run_cli("apply", "-f", str(yaml_file), env=env)
        assert applied.returncode == 0, applied.stderr

        table = run_cli("channels", "templates", "wa", env=env)
        assert table.returncode == 0, table.stderr
        lines = table.stdout.splitlines()
        assert lines[0].split() == ["NAME", "LANGUAGE", "CATEGORY", "STATUS", "CONFIGURED", "VARIABLES", "ID"]
        assert "yes" in lines[1] and "HX" + "a1" * 16 in lines[1]  # the channel's own first
        assert lines[2].split()[:4] == ["order_ready", "en", "UTILITY", "approved"] and ready in lines[2]
        assert "{{1}}=Ana, {{2}}=A-17" in lines[2] and len(lines) == 3  # the rejected one is not offered
        listed = json.loads(run_cli("channels", "templates", "wa", "--json", env=env).stdout)["templates"]
        assert [(t["id"], t["configured"]) for t in listed] == [("HX" + "a1" * 16, True), (ready, False)]
        assert listed[1]["variables"] == {"1": "Ana", "2": "A-17"} and listed[1]["category"] == "UTILITY"
        assert TOKEN not in table.stdout + table.stderr

        twilio.fail_next(status=503, scope="content")
        failed = run_cli("channels", "templates", "wa", env=env)
        assert failed.returncode == 1 and "could not list the Twilio account's approved templates" in failed.stderr
        missing = run_cli("channels", "templates", "nope", env=env)
        assert missing.returncode != 0 and "nope" in missing.stderr
