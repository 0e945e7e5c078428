"""``callable kb ...`` end to end, in-process (click's runner) on a real SQLite file and website."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from callable_agents.cli import cli
from callable_agents.core.errors import CallableError
from tests.conftest import new_master_key
from tests.knowledge.conftest import CSV_FILE, TestSite, make_pdf


@pytest.fixture
def run(tmp_path: Path, kb_settings):  # type: ignore[no-untyped-def]
    env = {
        "CALLABLE_DATA_DIR": str(kb_settings.data_dir),
        "CALLABLE_MASTER_KEY": new_master_key(),
        "CALLABLE_DISABLE_PLUGIN_AUTOLOAD": "true",
        "CALLABLE_ALLOW_PRIVATE_URLS": "true",
    }
    runner = CliRunner(env=env)

    def invoke(*args: str, input: str | None = None) -> Result:
        return runner.invoke(cli, list(args), input=input, catch_exceptions=True)

    assert invoke("workspace", "create", "Harbour Bikes").exit_code == 0
    return invoke


def test_kb_commands(run, tmp_path: Path, site: TestSite) -> None:  # type: ignore[no-untyped-def]
    created = run("kb", "create", "support")
    assert created.exit_code == 0, created.output
    assert created.output.startswith("created knowledge base support (") and "embeddings wordllama" in created.output

    added = run("kb", "add-text", "--title", "Parking", "Free parking behind the shop, two bays for disabled drivers.")
    assert added.exit_code == 0, added.output
    assert "indexed text 'Parking': ready, 1 document(s), 1 passage(s)" in added.output

    (tmp_path / "bikes.csv").write_bytes(CSV_FILE)
    (tmp_path / "handbook.pdf").write_bytes(make_pdf())
    files = run("kb", "add-file", str(tmp_path / "bikes.csv"), str(tmp_path / "handbook.pdf"))
    assert files.exit_code == 0, files.output
    assert "indexed file 'bikes.csv': ready, 3 document(s), 3 passage(s)" in files.output
    assert "indexed file 'handbook.pdf': ready, 3 document(s), 3 passage(s)" in files.output
    assert "embedding 3 passage(s)" in files.output  # the progress bar's label (stderr)

    del site.routes["/big"]  # its 500 passages would only slow this test down
    crawled = run("kb", "add-url", site.url("/"), "--crawl", "--max-depth", "1", "--refresh-every", "12h")
    assert crawled.exit_code == 0, crawled.output
    assert f"skipped {site.url('/private/staff')}: disallowed by robots.txt" in crawled.output
    assert f"indexed url '{site.url('/')}': ready, 5 document(s)" in crawled.output

    searched = run("kb", "search", "can I return accessories?", "-k", "2")
    assert searched.exit_code == 0, searched.output
    first = searched.output.splitlines()[0]
    assert first.startswith("1. score ") and "Customer Handbook, page 2  [source " in first
    assert "returned within 30 days" in searched.output.splitlines()[1]

    as_json = json.loads(run("kb", "search", "rent an e-bike", "--json", "-k", "1", "--mode", "dense").output)
    assert as_json[0]["url"] == site.url("/services") and "$45 a day" in as_json[0]["text"]

    listed = json.loads(run("kb", "list", "--json").output)
    [support] = listed
    assert support["stats"] == {"pending": 0, "indexing": 0, "ready": 4, "failed": 0, "sources": 4, "chunks": 13}
    url_source = next(source for source in support["sources"] if source["kind"] == "url")
    assert url_source["refresh_interval_seconds"] == 43200

    refreshed = run("kb", "refresh")
    assert refreshed.exit_code == 0, refreshed.output
    assert f"url '{site.url('/')}': ready" in refreshed.output

    removed = run("kb", "remove", "bikes.csv")
    assert removed.exit_code == 0 and removed.output.startswith("removed file 'bikes.csv'")
    after = run("kb", "search", "Quay Runner road bike", "--json", "-k", "5")
    assert "Quay Runner" not in after.output

    text_listing = run("kb", "list").output
    assert text_listing.startswith("support (") and "3 source(s), 3 ready, 0 failed" in text_listing


def test_kb_command_errors(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    no_kb = run("kb", "add-text", "--title", "x", "y")
    assert isinstance(no_kb.exception, CallableError)
    assert str(no_kb.exception) == "no knowledge base yet: create one with `callable kb create NAME`"

    run("kb", "create", "one")
    run("kb", "create", "two")
    ambiguous = run("kb", "add-text", "--title", "x", "y")
    assert str(ambiguous.exception) == (
        "--kb: several knowledge bases exist (one, two); name one with --kb NAME, e.g. --kb one"
    )

    (tmp_path / "photo.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 64)
    refused = run("kb", "add-file", "--kb", "one", str(tmp_path / "photo.jpg"))
    assert isinstance(refused.exception, CallableError) and "unsupported file type (JPEG image)" in str(
        refused.exception
    )

    (tmp_path / "broken.pdf").write_bytes(b"%PDF-1.4 nothing else")
    failed = run("kb", "add-file", "--kb", "one", str(tmp_path / "broken.pdf"))
    assert failed.exit_code == 1 and "file 'broken.pdf': failed: could not read the PDF" in failed.output
    assert str(failed.exception) == "1 source(s) failed to index: 'broken.pdf' (the reason is shown above)"

    octal_host = run("kb", "add-url", "--kb", "one", "http://0177.0.0.1:18085/page")
    assert isinstance(octal_host.exception, CallableError)
    assert "expected a URL with a valid host" in str(octal_host.exception)

    bad_interval = run("kb", "add-url", "--kb", "one", "https://example.com/", "--refresh-every", "often")
    assert str(bad_interval.exception).startswith("--refresh-every: expected a duration like 3600")
    missing = run("kb", "add-file", "--kb", "one", str(tmp_path / "nope.txt"))
    assert missing.exit_code != 0  # click checks the path... or our reader names it
