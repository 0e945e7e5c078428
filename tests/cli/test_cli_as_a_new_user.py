"""The ``callable`` command as a new user meets it (issue 19): human output and ``--json``,
``apply`` listing every problem, API keys listed and revoked, the way out in errors, the
terminal chat in plain text, the example plugin installing without warnings.

Each runs the real command (its entry function, in-process: ``tests.cli.helpers.run_cli``;
stdout is not a terminal) on a SQLite file; the server runs as a subprocess, and one runs the
command on a pseudo-terminal.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import warnings
from pathlib import Path

import httpx

from tests.cli.helpers import cli_env, free_port, run_cli, run_in_terminal

REPO = Path(__file__).resolve().parents[2]
ACCOUNT = "AC" + "cd" * 16

SHOP_YAML = """\
version: 1
workspace: {slug: shop, name: Corner Shop}
knowledge_bases:
  - name: faq
    sources:
      - {kind: text, title: Parking, text: "Free **parking** behind the shop, two bays for disabled drivers."}
agents:
  - name: assistant
    system_prompt: You answer questions about the Corner Shop.
    knowledge_bases: [faq]
channels:
  - name: site
    kind: widget
    agent: assistant
    config:
      allowed_origins: ['https://shop.example.com']
"""


class Cli:
    def __init__(self, folder: Path, **extra: str) -> None:
        self.env = cli_env(folder / "data", CALLABLE_AUTO_MIGRATE="true", **extra)

    def __call__(self, *args: str, expect: int = 0, input: str | None = None) -> subprocess.CompletedProcess[str]:
        result = run_cli(*args, env=self.env, input=input)
        assert result.returncode == expect, (args, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr
        return result


def applied(tmp_path: Path) -> Cli:
    cli = Cli(tmp_path, CALLABLE_PUBLIC_BASE_URL="https://bot.example.com")
    path = tmp_path / "shop.yaml"
    path.write_text(SHOP_YAML)
    done = cli("apply", "-f", str(path))
    # Indexing the file's sources shows its progress on stderr, with the count and the time.
    assert re.search(r"^  faq/Parking: loaded 1 document\(s\) in \d+\.\ds$", done.stderr, re.M), done.stderr
    assert re.search(r"^  embedded 1 passage\(s\) in \d+\.\ds$", done.stderr, re.M), done.stderr
    return cli


def test_channels_print_for_people_by_default_and_json_on_request(tmp_path: Path) -> None:
    cli = applied(tmp_path)
    shown = cli("channels", "show", "site").stdout.splitlines()
    # Key/value lines, the values aligned after the longest key.
    assert [re.sub(r":\s+", ": ", line) for line in shown[:4]] == ["name: site", "kind: widget", "agent: assistant", "integration: -"]
    assert len({line.index(line.split(":", 1)[1].strip()) for line in shown[:3]}) == 1
    tag = next(line for line in shown if line.startswith("script_tag:"))
    assert tag.endswith('async></script>') and 'src="https://bot.example.com/widget.js"' in tag
    config = shown[shown.index("config:") + 1 :]
    assert any(re.fullmatch(r"  allowed_origins:\s+https://shop\.example\.com", line) for line in config), config
    assert any(re.fullmatch(r"  appearance\.title:\s+Chat with us", line) for line in config), config
    assert not cli("channels", "show", "site").stdout.lstrip().startswith("{")

    as_json = json.loads(cli("channels", "show", "site", "--json").stdout)
    assert as_json["agent"] == "assistant" and as_json["name"] == "site" and as_json["agent_id"]
    assert as_json["script_tag"] == tag.split(None, 1)[1]

    table = cli("channels", "list").stdout.splitlines()
    assert re.fullmatch(r"NAME\s+KIND\s+AGENT\s+ENABLED\s+ID", table[0])
    assert re.fullmatch(rf"site\s+widget\s+assistant\s+yes\s+{as_json['id']}", table[1])
    [listed] = json.loads(cli("channels", "list", "--json").stdout)
    assert listed["agent"] == "assistant" and listed["id"] == as_json["id"]

    agents = cli("agents", "list").stdout.splitlines()
    assert re.fullmatch(r"NAME\s+KIND\s+MODEL\s+TOOLS\s+ID", agents[0])
    assert re.fullmatch(r"assistant\s+chat\s+offline\s+-\s+[0-9a-f]{32}", agents[1])
    agent = cli("agents", "show", "assistant").stdout.splitlines()
    assert agent[:5] == [
        "name:             assistant",
        "kind:             chat",
        "model:            offline",
        "integration:      -",
        "knowledge_bases:  faq",
    ]
    assert json.loads(cli("agents", "show", "assistant", "--json").stdout)["knowledge_bases"] == ["faq"]


def test_apikey_list_and_revoke_and_a_revoked_key_is_refused(tmp_path: Path) -> None:
    cli = applied(tmp_path)
    assert cli("apikey", "list").stdout.strip() == "no API keys in workspace shop: `callable apikey create --name NAME`"
    ci_key = cli("apikey", "create", "--name", "ci").stdout.strip()
    laptop_key = cli("apikey", "create", "--name", "laptop").stdout.strip()
    table = cli("apikey", "list").stdout
    assert ci_key not in table and laptop_key not in table  # keys are never shown again
    keys = json.loads(cli("apikey", "list", "--json").stdout)
    assert [(key["name"], key["status"]) for key in keys] == [("ci", "active"), ("laptop", "active")]
    assert ci_key.split("_")[1] == keys[0]["prefix"] and not any(ci_key in json.dumps(key) for key in keys)
    lines = table.splitlines()
    assert re.fullmatch(r"PREFIX\s+NAME\s+STATUS\s+CREATED AT\s+LAST USED AT", lines[0])
    assert re.match(rf"{keys[0]['prefix']}\s+ci\s+active\s+\d{{4}}-", lines[1])

    # A live server answers the key until it is revoked, then 401.
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "callable_agents", "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=cli.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}/api/v1/workspace"
        for _ in range(300):
            try:
                first = httpx.get(url, headers={"Authorization": f"Bearer {ci_key}"}, timeout=2)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        assert first.status_code == 200, first.text
        revoked = cli("apikey", "revoke", keys[0]["prefix"])
        assert revoked.stdout.strip() == f"revoked API key {keys[0]['prefix']} (ci) of workspace shop"
        refused = httpx.get(url, headers={"Authorization": f"Bearer {ci_key}"}, timeout=5)
        assert refused.status_code == 401 and "revoked" in refused.text
        assert httpx.get(url, headers={"Authorization": f"Bearer {laptop_key}"}, timeout=5).status_code == 200
    finally:
        server.terminate()
        server.wait(timeout=30)

    after = json.loads(cli("apikey", "list", "--json").stdout)
    assert after[0]["status"] == "revoked" and after[0]["revoked_at"] and after[0]["last_used_at"]
    assert after[1]["status"] == "active"
    again = cli("apikey", "revoke", "ci", expect=1)
    assert again.stderr.startswith(f"error: KEY: API key {keys[0]['prefix']} (ci) was already revoked on ")
    unknown = cli("apikey", "revoke", "nope", expect=1)
    assert unknown.stderr.strip() == "error: KEY: no API key 'nope' in this workspace; `callable apikey list` shows the keys"
    by_name = cli("apikey", "revoke", "laptop")  # a name shared by no other live key is enough
    assert "(laptop)" in by_name.stdout


def test_apply_lists_every_problem_one_per_line_with_secrets_among_them(tmp_path: Path) -> None:
    cli = Cli(tmp_path)
    agents = "".join(
        f"  - name: agent{n}\n    system_prompt: Help.\n    model_settings: {{temperature: 9}}\n" for n in range(7)
    )
    text = (
        "version: 1\nworkspace: {slug: shop, name: Shop}\nagents:\n" + agents
        + "  - name: leaky\n    system_prompt: Help.\n    model_settings: {api_key: sk-proj-0123456789abcdefABCDEF}\n"
    )
    path = tmp_path / "shop.yaml"
    path.write_text(text)
    failed = cli("apply", "-f", str(path), expect=1)
    lines = failed.stderr.strip().splitlines()
    numbered = [number for number, row in enumerate(text.splitlines(), start=1) if "model_settings" in row]
    assert len(lines) == 10, lines  # 7 temperatures, the secret and the unknown field, the count; no cap
    for n, (line, number) in enumerate(zip(lines[:7], numbered)):
        prefix = "error: " if n == 0 else ""
        assert line.startswith(f"{prefix}{path}:{number}: agents[{n}].model_settings.temperature: "), line
    assert lines[7].startswith(f"{path}:{numbered[7]}: agents[7].model_settings.api_key: looks like a secret")
    assert lines[8].startswith(f"{path}:{numbered[7]}: agents[7].model_settings.api_key: unknown field (expected one of")
    assert lines[9] == f"9 problems in {path}; nothing was written"
    assert "more problems" not in failed.stderr and "sk-proj-0123456789" not in failed.stderr
    assert json.loads(cli("workspace", "list", "--json").stdout) == []


def test_the_terminal_chat_prints_plain_text(tmp_path: Path) -> None:
    cli = applied(tmp_path)
    chat = cli("chat", "assistant", input="is there parking?\n\n")
    reply = chat.stdout
    assert reply.startswith("assistant: Free parking behind the shop"), reply
    assert "(offline mode: answered from the knowledge base)" in reply  # labelled, as everywhere
    assert "_(" not in reply and "**" not in reply  # no Markdown markers in a terminal


def test_an_unreachable_provider_says_the_way_out(tmp_path: Path) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    cli = Cli(tmp_path, CALLABLE_TWILIO_API_BASE_URL=closed)
    cli("workspace", "create", "Shop")
    token = "t" * 32
    failed = cli("integrations", "connect", "twilio", "--name", "tw", "--account-sid", ACCOUNT, input=token + "\n\n", expect=1)
    message = failed.stderr.strip()
    assert message.startswith(f"error: could not reach Twilio to check account {ACCOUNT}: "), message
    assert "CALLABLE_TWILIO_API_BASE_URL" in message and "--no-verify" in message and "nothing was stored" in message
    assert token not in failed.stdout + failed.stderr
    stored = cli("integrations", "connect", "twilio", "--name", "tw", "--account-sid", ACCOUNT, "--no-verify", input=token + "\n\n")
    assert "connected twilio integration 'tw'" in stored.stdout


def test_workspace_list_is_a_table_on_a_terminal_too(tmp_path: Path) -> None:
    cli = Cli(tmp_path)
    cli("workspace", "create", "Corner Shop")
    cli("workspace", "create", "Harbour Bikes")
    code, screen = run_in_terminal("workspace", "list", env=cli.env)
    assert code == 0, screen
    rows = [line for line in screen.replace("\r", "").splitlines() if line]
    assert re.fullmatch(r"SLUG\s+NAME\s+ID", rows[0]) and len(rows) == 3
    assert re.fullmatch(r"corner-shop\s+Corner Shop\s+[0-9a-f]{32}", rows[1])
    piped = cli("workspace", "list").stdout.splitlines()
    assert piped == rows  # the same table when piped
    assert [row["slug"] for row in json.loads(cli("workspace", "list", "--json").stdout)] == ["corner-shop", "harbour-bikes"]


def test_the_example_plugin_declares_its_metadata_without_deprecation_warnings() -> None:
    from setuptools.config.pyprojecttoml import apply_configuration
    from setuptools.dist import Distribution

    for pyproject in sorted((REPO / "examples").glob("*/pyproject.toml")):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # setuptools' deprecation warnings fail the test
            dist = apply_configuration(Distribution(), pyproject)
        assert dist.metadata.license_expression == "Apache-2.0", pyproject
