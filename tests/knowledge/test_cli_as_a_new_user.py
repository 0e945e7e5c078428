"""``callable kb`` as a new user meets it (issue 19): progress, choices, flags, titles, the README.

In-process through click's runner (stderr is not a terminal there: plain progress lines)
and as a real subprocess on a pseudo-terminal (a progress bar), on a real SQLite file and a
real website on 127.0.0.1.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from callable_agents.cli import cli
from callable_agents.core.config import Settings
from tests.cli.helpers import cli_env, run_cli, run_in_terminal
from tests.knowledge.conftest import TestSite, make_docx, make_pdf

README = Path(__file__).resolve().parents[2] / "README.md"
PARAGRAPH = (
    "Paragraph {n}: our workshop services bicycles of every make. A tune-up covers gears, brakes, "
    "wheel truing and a safety check, and takes two working days unless parts must be ordered in. "
)


def long_text(paragraphs: int = 60) -> str:
    return "\n\n".join(PARAGRAPH.format(n=n) * 3 for n in range(paragraphs))


@pytest.fixture
def env(kb_settings: Settings) -> dict[str, str]:
    return cli_env(kb_settings.data_dir, CALLABLE_ALLOW_PRIVATE_URLS="true")


@pytest.fixture
def run(env: dict[str, str]):  # type: ignore[no-untyped-def]
    runner = CliRunner(env=env)

    def invoke(*args: str) -> Result:
        return runner.invoke(cli, list(args), catch_exceptions=True)

    assert invoke("workspace", "create", "Harbour Bikes").exit_code == 0
    return invoke


def test_progress_without_a_terminal_is_plain_lines_with_counts_and_time(run, tmp_path: Path, site: TestSite) -> None:  # type: ignore[no-untyped-def]
    assert run("kb", "create", "support").exit_code == 0
    (tmp_path / "services.txt").write_text(long_text())
    added = run("kb", "add-file", str(tmp_path / "services.txt"))
    assert added.exit_code == 0, added.output
    passages = int(re.search(r"ready, 1 document\(s\), (\d+) passage\(s\)", added.output).group(1))  # type: ignore[union-attr]
    assert passages >= 10
    lines = added.output.splitlines()
    assert f"  embedding {passages} passage(s): 0/{passages}" in lines  # a line, not a bar
    assert not any("\r" in line or "%" in line for line in lines)
    assert any(re.fullmatch(rf"  embedded {passages} passage\(s\) in \d+\.\ds", line) for line in lines), lines
    assert any(re.fullmatch(rf"done: 1 of 1 source\(s\) ready, {passages} passage\(s\), in \d+\.\ds", line) for line in lines)

    del site.routes["/big"]
    crawled = run("kb", "add-url", site.url("/"), "--crawl", "--max-depth", "1")
    assert crawled.exit_code == 0, crawled.output
    assert f"indexed url '{site.url('/')}': ready, 5 document(s)" in crawled.output
    assert re.search(r"  .*: loaded 5 document\(s\) in \d+\.\ds", crawled.output), crawled.output

    refreshed = run("kb", "refresh")
    assert refreshed.exit_code == 0, refreshed.output
    assert "content unchanged: nothing to re-index" in refreshed.output
    assert re.search(r"done: 1 source\(s\) refreshed, 0 failed, in \d+\.\ds", refreshed.output)


def test_progress_on_a_terminal_is_a_bar(run, env: dict[str, str], tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert run("kb", "create", "support").exit_code == 0
    (tmp_path / "services.txt").write_text(long_text())
    code, screen = run_in_terminal("kb", "add-file", "services.txt", env=env, cwd=tmp_path)
    assert code == 0, screen
    passages = int(re.search(r"ready, 1 document\(s\), (\d+) passage\(s\)", screen).group(1))  # type: ignore[union-attr]
    # click's bar: the cursor hidden, redrawn in place, filled, with its position.
    assert re.search(rf"\x1b\[\?25l  embedding {passages} passage\(s\)\s+\[#+\]\s+{passages}/{passages}", screen), screen
    assert "\r  services.txt: loaded 1 document(s) in " in screen  # the count, then its summary in place
    assert f"embedding {passages} passage(s): 0/{passages}" not in screen  # not the plain lines
    assert re.search(rf"embedded {passages} passage\(s\) in \d+\.\ds", screen)


def test_several_knowledge_bases_the_error_names_the_flag_and_the_choices(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    run("kb", "create", "faq")
    run("kb", "create", "menu")
    ambiguous = run("kb", "add-text", "--title", "Parking", "Behind the shop.")
    assert ambiguous.exit_code == 1
    assert str(ambiguous.exception) == "--kb: several knowledge bases exist (faq, menu); name one with --kb NAME, e.g. --kb faq"

    assert run("kb", "add-text", "--kb", "faq", "--title", "Parking", "Behind the shop.").exit_code == 0
    assert run("kb", "add-text", "--kb", "menu", "--title", "Soup", "Tomato soup daily.").exit_code == 0
    assert run("kb", "add-text", "--kb", "menu", "--title", "Parking", "Ask at the till.").exit_code == 0
    # A source found in one knowledge base needs no --kb; in two, the error lists them.
    removed = run("kb", "remove", "Soup")
    assert removed.exit_code == 0 and removed.output.startswith("removed text 'Soup'"), removed.output
    twice = run("kb", "remove", "Parking")
    assert twice.exit_code == 1
    assert str(twice.exception) == (
        "--kb: several knowledge bases with a source 'Parking' exist (faq, menu); name one with --kb NAME, e.g. --kb faq"
    )
    nowhere = run("kb", "remove", "Nothing")
    assert nowhere.exit_code == 1 and "no source 'Nothing' in any knowledge base (faq, menu)" in str(nowhere.exception)
    assert run("kb", "remove", "Parking", "--kb", "menu").exit_code == 0
    # refresh without --kb covers every knowledge base (pending sources retried, none here)
    assert run("kb", "refresh").exit_code == 0

    assert run("workspace", "create", "Second Shop").exit_code == 0
    no_workspace = run("kb", "list")
    assert no_workspace.exit_code == 1
    assert str(no_workspace.exception) == (
        "--workspace: several workspaces exist (harbour-bikes, second-shop); name one with -w SLUG "
        "(or set CALLABLE_WORKSPACE), e.g. --workspace harbour-bikes"
    )


def test_flag_errors_name_the_flag(run) -> None:  # type: ignore[no-untyped-def]
    run("kb", "create", "faq")
    deep = run("kb", "add-url", "https://example.com/", "--crawl", "--max-depth", "50")
    assert deep.exit_code == 1
    assert str(deep.exception).startswith("--max-depth: "), str(deep.exception)
    assert "options.max_depth" not in str(deep.exception) and "20" in str(deep.exception)
    many = run("kb", "add-url", "https://example.com/", "--crawl", "--max-pages", "0")
    assert many.exit_code == 1 and str(many.exception).startswith("--max-pages: "), str(many.exception)


def test_file_titles_are_as_documented(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    run("kb", "create", "faq")
    # reportlab writes "untitled" when the author set no title: the file name is the title.
    (tmp_path / "prices.pdf").write_bytes(make_pdf(title="untitled"))
    (tmp_path / "handbook.pdf").write_bytes(make_pdf())  # its own title: "Customer Handbook"
    (tmp_path / "terms.pdf").write_bytes(make_pdf(title="Customer Handbook"))
    assert run("kb", "add-file", str(tmp_path / "prices.pdf"), str(tmp_path / "handbook.pdf")).exit_code == 0
    assert run("kb", "add-file", str(tmp_path / "terms.pdf"), "--title", "Rental terms").exit_code == 0
    passages = json.loads(run("kb", "search", "returned within 30 days", "--json", "-k", "10").output)
    titles = {(p["title"], p["page"]) for p in passages}
    assert ("prices.pdf", 2) in titles and ("Customer Handbook", 2) in titles and ("Rental terms", 2) in titles
    assert not any(title.lower() == "untitled" for title, _ in titles)
    help_text = run("kb", "add-file", "--help").output
    assert "default: the document's own title if it has one, else the file name" in " ".join(help_text.split())


def test_a_file_whose_content_is_not_its_extension_is_indexed_with_a_warning(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    run("kb", "create", "faq")
    (tmp_path / "menu.pdf").write_text("Soup of the day: tomato. Bread baked every morning.\n")
    added = run("kb", "add-file", str(tmp_path / "menu.pdf"))
    assert added.exit_code == 0, added.output
    assert (
        "menu.pdf: named .pdf but the content is plain text, not a PDF: indexed as plain text "
        "(rename the file to silence this)"
    ) in added.output
    (tmp_path / "notes.docx").write_text("# Notes\n\n- one\n- two\n")
    warned = run("kb", "add-file", str(tmp_path / "notes.docx"))
    assert "notes.docx: named .docx but the content is Markdown, not a DOCX document" in warned.output
    (tmp_path / "real.pdf").write_bytes(make_pdf())
    assert "named .pdf" not in run("kb", "add-file", str(tmp_path / "real.pdf")).output


def readme_kb_examples() -> list[list[str]]:
    """The ``callable kb ...`` lines of README.md's Knowledge section, as argument lists."""
    text = README.read_text(encoding="utf-8")
    section = text.split("## Knowledge", 1)[1].split("\n## ", 1)[0]
    block = section.split("```sh", 1)[1].split("```", 1)[0]
    return [shlex.split(line, comments=True)[1:] for line in block.splitlines() if line.startswith("callable kb ")]


def test_the_readme_knowledge_examples_run_as_written_with_two_knowledge_bases(
    env: dict[str, str], tmp_path: Path, site: TestSite
) -> None:
    examples = readme_kb_examples()
    assert [args[:2] for args in examples] == [
        ["kb", "create"], ["kb", "add-url"], ["kb", "add-file"], ["kb", "add-text"], ["kb", "search"], ["kb", "refresh"]
    ]
    del site.routes["/big"]
    (tmp_path / "menu.pdf").write_bytes(make_pdf())
    (tmp_path / "allergens.docx").write_bytes(make_docx())
    assert run_cli("workspace", "create", "Harbour Bikes", env=env).returncode == 0
    # The workspace already has a knowledge base, so the README's `kb create` makes it two.
    assert run_cli("kb", "create", "shop", env=env).returncode == 0
    assert run_cli("kb", "add-text", "Open 9-17.", "--title", "Hours", env=env).returncode == 0
    for args in examples:
        # Only the website is swapped for the local one (no internet in tests).
        args = [site.url("/") if arg == "https://example.com" else arg for arg in args]
        done = run_cli(*args, env=env, cwd=tmp_path, timeout=240)
        assert done.returncode == 0, (args, done.stdout, done.stderr)
    listed = json.loads(run_cli("kb", "list", "--json", env=env).stdout)
    assert {base["name"] for base in listed} == {"shop", "faq"}
    faq = next(base for base in listed if base["name"] == "faq")
    assert {source["kind"] for source in faq["sources"]} == {"url", "file", "text"}
    assert faq["stats"]["failed"] == 0 and faq["stats"]["ready"] == len(faq["sources"]) == 4
