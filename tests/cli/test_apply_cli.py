"""``callable apply`` and ``callable agents``: the real command (its entry
function, in-process: ``tests.cli.helpers.run_cli``), on a small file."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.cli.helpers import cli_env, run_cli

OPENAI_KEY = "sk-cli-apply-0123456789abcdef-LMNO"

CAFE_YAML = """\
version: 1
workspace:
  slug: cafe
  name: Corner Cafe
knowledge_bases:
  - name: faq
    sources:
      - kind: text
        title: Opening hours
        text: We are open every day from 8:00 to 16:00, except on public holidays.
agents:
  - name: assistant
    system_prompt: You answer questions about the Corner Cafe.
    business_info: {name: Corner Cafe, hours: "Daily 8:00-16:00"}
    model_settings: {integration: openai-main, model: gpt-4o-mini, temperature: 0.2}
    knowledge_bases: [faq]
    greeting: Hello from the Corner Cafe!
    tools:
      - type: handoff
        name: handoff
        config:
          customer_message: A member of staff will reply shortly.
"""


class Cli:
    """Runs ``callable`` against a SQLite file in ``folder`` (migrated on first use)."""

    def __init__(self, folder: Path) -> None:
        self.env = cli_env(folder / "data", CALLABLE_AUTO_MIGRATE="true")

    def __call__(self, *args: str, expect: int = 0) -> subprocess.CompletedProcess[str]:
        result = run_cli(*args, env=self.env)
        assert result.returncode == expect, (result.stdout, result.stderr)
        assert "Traceback" not in result.stderr
        assert OPENAI_KEY not in result.stdout + result.stderr
        return result


def line_of(text: str, snippet: str) -> int:
    return next(number for number, row in enumerate(text.splitlines(), start=1) if snippet in row)


def test_apply_is_idempotent_and_agents_show_what_was_applied(tmp_path: Path) -> None:
    cli = Cli(tmp_path)
    path = tmp_path / "cafe.yaml"
    path.write_text(CAFE_YAML.replace("integration: openai-main, ", ""))

    dry = cli("apply", "-f", str(path), "--dry-run")
    assert "created agent assistant" in dry.stdout.splitlines()
    assert dry.stdout.splitlines()[-1] == "dry run: nothing was written"

    first = cli("apply", "-f", str(path))
    assert first.stdout.splitlines() == [
        "created workspace cafe",
        "created knowledge base faq",
        "created source faq/Opening hours",
        "created agent assistant",
    ]
    second = cli("apply", "-f", str(path))
    assert second.stdout.splitlines() == [
        "unchanged workspace cafe",
        "unchanged knowledge base faq",
        "unchanged source faq/Opening hours",
        "unchanged agent assistant",
        "workspace cafe: nothing to change",
    ]

    listed = cli("agents", "list", "--workspace", "cafe", "--json")
    assert [(row["name"], row["model"], row["tools"]) for row in json.loads(listed.stdout)] == [
        ("assistant", "gpt-4o-mini", ["handoff"])
    ]
    shown = json.loads(cli("agents", "show", "assistant", "--workspace", "cafe", "--json").stdout)
    assert shown["model_settings"] == {"model": "gpt-4o-mini", "temperature": 0.2, "max_tool_rounds": 4}
    assert shown["knowledge_bases"] == ["faq"]
    assert shown["greeting"] == "Hello from the Corner Cafe!"
    assert shown["tools"] == [
        {
            "type": "handoff",
            "name": "handoff",
            "config": {**shown["tools"][0]["config"], "customer_message": "A member of staff will reply shortly."},
        }
    ]


def test_errors_are_one_line_naming_file_line_and_field(tmp_path: Path) -> None:
    cli = Cli(tmp_path)
    path = tmp_path / "cafe.yaml"
    path.write_text(CAFE_YAML)
    failed = cli("apply", "-f", str(path), expect=1)
    assert failed.stderr.strip().splitlines() == [
        f"error: {path}:{line_of(CAFE_YAML, 'integration: openai-main')}: agents[0].model_settings.integration: "
        "no integration named 'openai-main' in this workspace; connect one with "
        "`callable integrations connect openai --name openai-main` and reference it by name"
    ]

    inlined = CAFE_YAML.replace("integration: openai-main, ", f"api_key: {OPENAI_KEY}, ")
    path.write_text(inlined)
    result = cli("apply", "-f", str(path), expect=1)
    assert result.stderr.startswith(
        f"error: {path}:{line_of(inlined, 'api_key')}: agents[0].model_settings.api_key: "
        "looks like a secret written into the file; secrets are never written into an apply file: "
        "connect an integration (`callable integrations connect"
    )

    path.write_text("workspace:\n  slug: cafe\n agents: []\n")
    result = cli("apply", "-f", str(path), "--dry-run", expect=1)
    assert result.stderr.startswith(f"error: {path}:3: invalid YAML:")


def test_deep_nesting_is_one_line_not_a_recursion_error(tmp_path: Path) -> None:
    cli = Cli(tmp_path)
    path = tmp_path / "cafe.yaml"
    path.write_text(CAFE_YAML.replace("hours: \"Daily 8:00-16:00\"}", "hours: " + "[" * 5000 + "]" * 5000 + "}"))
    failed = cli("apply", "-f", str(path), "--dry-run", expect=1)
    assert failed.stderr.strip().splitlines() == [
        f"error: {path}:{line_of(CAFE_YAML, 'business_info')}: expected values nested at most 32 levels deep "
        "(lists and mappings inside each other, counting what aliases repeat); flatten this part of the file"
    ]


def test_file_sources_stay_inside_the_files_folder_or_the_source_root(tmp_path: Path) -> None:
    cli = Cli(tmp_path)
    project = tmp_path / "project"
    project.mkdir()
    (tmp_path / "shared.md").write_text("# Shared\nWe bake on Sundays too.\n")
    path = project / "cafe.yaml"
    text = CAFE_YAML.replace("integration: openai-main, ", "").replace(
        "    sources:\n", "    sources:\n      - kind: file\n        path: ../shared.md\n"
    )
    path.write_text(text)
    refused = cli("apply", "-f", str(path), "--dry-run", expect=1)
    assert refused.stderr.strip().splitlines() == [
        f"error: {path}:{line_of(text, 'path: ../shared.md')}: knowledge_bases[0].sources[0].path: expected a path "
        f"inside the YAML file's folder {str(project.resolve())!r}; '../shared.md' is outside it (give another folder "
        "with `callable apply --source-root DIR`)"
    ]
    allowed = cli("apply", "-f", str(path), "--dry-run", "--source-root", str(tmp_path))
    assert "created source faq/../shared.md" in allowed.stdout.splitlines()

    database = next((tmp_path / "data").glob("*.db"))  # the command migrated it on first use
    path.write_text(text.replace("../shared.md", f"../data/{database.name}"))
    refused = cli("apply", "-f", str(path), "--dry-run", "--source-root", str(tmp_path), expect=1)
    assert refused.stderr.startswith(
        f"error: {path}:{line_of(text, 'path: ../shared.md')}: knowledge_bases[0].sources[0].path: "
        f"'../data/{database.name}' is in the server's data folder (settings.data_dir"
    )
