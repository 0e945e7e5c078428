"""Knowledge bases and sources through the admin API: text, uploaded files and URLs become
ready in the background (or failed with the reason), re-sync, removal, the retrieval test."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from tests.api.conftest import ApiEnv, error_of
from tests.knowledge.conftest import Response, TestSite, html
from tests.knowledge.conftest import page as site_page

FAQ = (
    "# Repairs\n\nWe repair every kind of bicycle. A puncture repair costs $15 and is done while you wait.\n\n"
    "# Rentals\n\nCity bikes rent for $25 a day. Children's bikes are free with an adult rental.\n"
)
PRICES_CSV = b"item,price\nhelmet,$30\nbell,$8\nlights,$22\n"
SETTLE_SECONDS = 60


@pytest.fixture
def site() -> Iterator[TestSite]:
    with TestSite() as running:
        yield running


async def settled(env: ApiEnv, kb_id: str, source_id: str) -> dict[str, Any]:
    """The source once it is ready or failed (indexing runs in the background)."""
    for _ in range(SETTLE_SECONDS * 10):
        source: dict[str, Any] = (await env.api.get(f"/knowledge-bases/{kb_id}/sources/{source_id}")).json()
        if source["status"] in ("ready", "failed"):
            return source
        await asyncio.sleep(0.1)
    raise AssertionError(f"source {source_id} still {source['status']} after {SETTLE_SECONDS}s")


async def make_kb(env: ApiEnv, name: str = "faq") -> str:
    created = await env.api.post("/knowledge-bases", json={"name": name})
    assert created.status_code == 201, created.text
    kb_id: str = created.json()["id"]
    return kb_id


async def test_text_files_and_the_retrieval_test(env: ApiEnv) -> None:
    kb_id = await make_kb(env)
    added = await env.api.post(f"/knowledge-bases/{kb_id}/sources", json={"kind": "text", "title": "FAQ", "text": FAQ})
    assert added.status_code == 202, added.text
    assert added.json()["status"] in ("pending", "indexing")
    text = await settled(env, kb_id, added.json()["id"])
    assert text["status"] == "ready" and text["chunk_count"] >= 1 and text["error"] is None
    assert text["progress"] is None  # only while this process indexes it

    uploaded = await env.api.post(
        f"/knowledge-bases/{kb_id}/sources/files",
        files=[("file", ("prices.csv", PRICES_CSV, "text/csv")), ("file", ("notes.md", b"# Notes\n\nWe open at 9.", "text/markdown"))],
    )
    assert uploaded.status_code == 202, uploaded.text
    sources = uploaded.json()["sources"]
    assert [s["location"] for s in sources] == ["prices.csv", "notes.md"]
    for source in sources:
        assert (await settled(env, kb_id, source["id"]))["status"] == "ready"

    titled = await env.api.post(
        f"/knowledge-bases/{kb_id}/sources/files", data={"title": "Price list"}, files={"file": ("prices.csv", PRICES_CSV)}
    )
    [replaced] = titled.json()["sources"]
    assert (replaced["id"], replaced["title"]) == (sources[0]["id"], "Price list")  # the same file name replaces
    assert (await settled(env, kb_id, replaced["id"]))["status"] == "ready"

    kb = (await env.api.get(f"/knowledge-bases/{kb_id}")).json()
    assert kb["stats"]["ready"] == 3 and kb["stats"]["sources"] == 3 and len(kb["sources"]) == 3
    assert [b["name"] for b in (await env.api.get("/knowledge-bases")).json()["knowledge_bases"]] == ["faq"]

    found = await env.api.post(f"/knowledge-bases/{kb_id}/search", json={"query": "how much is a puncture repair?", "k": 3})
    assert found.status_code == 200, found.text
    passages = found.json()["passages"]
    assert passages[0]["rank"] == 1 and "$15" in passages[0]["text"] and passages[0]["title"] == "FAQ"
    assert [p["score"] for p in passages] == sorted((p["score"] for p in passages), reverse=True)
    keyword = await env.api.post(f"/knowledge-bases/{kb_id}/search", json={"query": "helmet", "mode": "keyword", "k": 1})
    assert "helmet" in keyword.json()["passages"][0]["text"]

    # Removing a source takes its passages out of answers at once.
    assert (await env.api.delete(f"/knowledge-bases/{kb_id}/sources/{text['id']}")).status_code == 204
    after = await env.api.post(f"/knowledge-bases/{kb_id}/search", json={"query": "puncture repair", "mode": "keyword"})
    assert all("$15" not in p["text"] for p in after.json()["passages"])
    assert (await env.api.get(f"/knowledge-bases/{kb_id}/sources/{text['id']}")).status_code == 404

    assert (await env.api.delete(f"/knowledge-bases/{kb_id}")).status_code == 204
    assert (await env.api.get(f"/knowledge-bases/{kb_id}")).status_code == 404


async def test_a_url_crawl_a_failure_with_its_reason_and_a_resync(env: ApiEnv, site: TestSite) -> None:
    kb_id = await make_kb(env)
    crawl = await env.api.post(
        f"/knowledge-bases/{kb_id}/sources",
        json={"kind": "url", "url": site.url("/"), "options": {"mode": "crawl", "max_pages": 3, "max_depth": 1}},
    )
    assert crawl.status_code == 202, crawl.text
    crawled = await settled(env, kb_id, crawl.json()["id"])
    assert crawled["status"] == "ready" and 1 < crawled["document_count"] <= 3, crawled
    assert crawled["options"]["mode"] == "crawl"

    page = await env.api.post(f"/knowledge-bases/{kb_id}/sources", json={"kind": "url", "url": site.url("/opening-hours")})
    failed = await settled(env, kb_id, page.json()["id"])
    assert failed["status"] == "failed" and "404" in failed["error"], failed

    site.routes["/opening-hours"] = html("Hours", "<h1>Opening hours</h1><p>Open daily from 8 until 6.</p>")
    retried = await env.api.post(f"/knowledge-bases/{kb_id}/sources/{failed['id']}/refresh")
    assert retried.status_code == 202
    ready = await settled(env, kb_id, failed["id"])
    assert ready["status"] == "ready" and ready["error"] is None
    hours = await env.api.post(f"/knowledge-bases/{kb_id}/search", json={"query": "opening hours", "k": 1})
    assert "8 until 6" in hours.json()["passages"][0]["text"]

    # While this process indexes a source, its view says how far it got.
    site.routes["/slow"] = Response(body=site_page("Slow", "<p>Deliveries leave at noon.</p>").encode(), delay=1.5)
    slow = (await env.api.post(f"/knowledge-bases/{kb_id}/sources", json={"kind": "url", "url": site.url("/slow")})).json()
    for _ in range(100):
        seen = (await env.api.get(f"/knowledge-bases/{kb_id}/sources/{slow['id']}")).json()
        if seen["progress"] is not None and seen["status"] == "indexing":
            break
        await asyncio.sleep(0.05)
    assert seen["status"] == "indexing" and seen["progress"]["stage"] == "loading", seen
    assert (await settled(env, kb_id, slow["id"]))["status"] == "ready"

    site.routes["/opening-hours"] = html("Hours", "<h1>Opening hours</h1><p>Open daily from 7 until 7.</p>")
    assert (await env.api.post(f"/knowledge-bases/{kb_id}/refresh")).status_code == 202
    for _ in range(SETTLE_SECONDS * 10):
        hours = await env.api.post(f"/knowledge-bases/{kb_id}/search", json={"query": "opening hours", "k": 1})
        if "7 until 7" in hours.json()["passages"][0]["text"]:
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError("re-syncing the knowledge base did not fetch the changed page")


async def test_bad_input_names_the_field(env: ApiEnv) -> None:
    kb_id = await make_kb(env)
    sources = f"/knowledge-bases/{kb_id}/sources"
    assert error_of(await env.api.post("/knowledge-bases", json={"name": "faq"}), 409)
    assert error_of(await env.api.post("/knowledge-bases", json={"name": ""}), 422)["field"] == "name"
    bad_model = error_of(await env.api.post("/knowledge-bases", json={"name": "x", "embedding_model": "magic"}), 422)
    assert "magic" in bad_model["message"]
    cases: dict[str, dict[str, Any]] = {
        "kind": {"kind": "fax"},
        "title": {"kind": "text", "text": "hello"},
        "text": {"kind": "text", "title": "Empty", "text": "   "},
        "url": {"kind": "url"},
        "options": {"kind": "url", "url": "https://example.com", "options": "crawl"},
        "refresh_interval_seconds": {"kind": "url", "url": "https://example.com", "refresh_interval_seconds": "daily"},
        "index": {"kind": "text", "title": "T", "text": "t", "index": "now"},
        "colour": {"kind": "text", "title": "T", "text": "t", "colour": "red"},
    }
    for field, body in cases.items():
        assert error_of(await env.api.post(sources, json=body), 422).get("field") == field, field
    crawl = error_of(
        await env.api.post(sources, json={"kind": "url", "url": "https://example.com", "options": {"max_pages": -1}}), 422
    )
    assert "options.max_pages" in crawl["message"]
    assert "refresh_interval_seconds" in error_of(
        await env.api.post(sources, json={"kind": "url", "url": "https://example.com", "refresh_interval_seconds": 5}),
        422,
    )["message"]

    files = f"{sources}/files"
    assert error_of(await env.api.post(files, json={"file": "x"}), 422)["field"] == "file"
    assert error_of(await env.api.post(files, data={"title": "x"}, files={"other": ("a.txt", b"x")}), 422)["field"] == "file"
    two_titles = await env.api.post(
        files, data={"title": "One"}, files=[("file", ("a.txt", b"aaa")), ("file", ("b.txt", b"bbb"))]
    )
    assert error_of(two_titles, 422)["field"] == "title"
    # The upload path takes bodies over the general request limit (CALLABLE_MAX_REQUEST_BYTES).
    big = b"x" * (env.runtime.settings.max_request_bytes + 1000)
    assert error_of(await env.api.post(files, files={"other": ("big.txt", big)}), 422)["field"] == "file"
    assert (await env.api.post(sources, content=big)).status_code == 413
    eleven = [("file", (f"{n}.txt", b"words")) for n in range(11)]
    assert "at most 10 files" in error_of(await env.api.post(files, files=eleven), 422)["message"]
    garbage = error_of(await env.api.post(files, files={"file": ("blob.bin", bytes(range(256)) * 8)}), 422)
    assert garbage["message"].startswith("file:")
    assert error_of(await env.api.post(files, files={"file": ("empty.txt", b"")}), 422)["message"].startswith("file:")

    search = f"/knowledge-bases/{kb_id}/search"
    assert error_of(await env.api.post(search, json={}), 422)["field"] == "query"
    assert error_of(await env.api.post(search, json={"query": "q", "k": 0}), 422)["field"] == "k"
    assert error_of(await env.api.post(search, json={"query": "q", "mode": "psychic"}), 422)["field"] == "mode"
    assert (await env.api.get(sources)).json()["sources"] == []  # nothing half-stored


async def test_another_workspaces_knowledge_is_not_found(env: ApiEnv) -> None:
    theirs = (await env.other.post("/knowledge-bases", json={"name": "secret"})).json()
    added = await env.other.post(
        f"/knowledge-bases/{theirs['id']}/sources", json={"kind": "text", "title": "Code", "text": "The alarm code is 4321."}
    )
    source_id = added.json()["id"]
    mine = await make_kb(env, "mine")
    for kb in (theirs["id"], theirs["name"]):
        base = f"/knowledge-bases/{kb}"
        assert (await env.api.get(base)).status_code == 404
        assert (await env.api.get(f"{base}/sources")).status_code == 404
        assert (await env.api.post(f"{base}/sources", json={"kind": "text", "title": "x", "text": "y"})).status_code == 404
        assert (await env.api.post(f"{base}/sources/files", files={"file": ("a.txt", b"aaa")})).status_code == 404
        assert (await env.api.post(f"{base}/search", json={"query": "alarm code"})).status_code == 404
        assert (await env.api.post(f"{base}/refresh")).status_code == 404
        assert (await env.api.get(f"{base}/sources/{source_id}")).status_code == 404
        assert (await env.api.post(f"{base}/sources/{source_id}/refresh")).status_code == 404
        assert (await env.api.delete(f"{base}/sources/{source_id}")).status_code == 404
        assert (await env.api.patch(base, json={"name": "taken"})).status_code == 404
        assert (await env.api.delete(base)).status_code == 404
    # Their source id under my own knowledge base is not found either.
    assert (await env.api.get(f"/knowledge-bases/{mine}/sources/{source_id}")).status_code == 404
    assert (await env.api.delete(f"/knowledge-bases/{mine}/sources/{source_id}")).status_code == 404
    assert (await env.api.post(f"/knowledge-bases/{mine}/sources/{source_id}/refresh")).status_code == 404
    assert [b["name"] for b in (await env.api.get("/knowledge-bases")).json()["knowledge_bases"]] == ["mine"]
    assert (await env.other.get(f"/knowledge-bases/{theirs['id']}/sources/{source_id}")).status_code == 200


async def test_rename_and_delete_refused_while_an_agent_uses_it(env: ApiEnv) -> None:
    kb_id = await make_kb(env)
    renamed = await env.api.patch(f"/knowledge-bases/{kb_id}", json={"name": "help-centre"})
    assert renamed.status_code == 200 and renamed.json()["name"] == "help-centre"
    await make_kb(env, "other")
    assert error_of(await env.api.patch(f"/knowledge-bases/{kb_id}", json={"name": "other"}), 409)["message"].startswith("name:")
    assert error_of(await env.api.patch(f"/knowledge-bases/{kb_id}", json={"name": " "}), 422)["message"].startswith("name:")
    agent = await env.api.post("/agents", json={"name": "assistant", "knowledge_bases": ["help-centre"]})
    assert agent.status_code == 201, agent.text
    in_use = error_of(await env.api.delete(f"/knowledge-bases/{kb_id}"), 409)
    assert "assistant" in in_use["message"]
    await env.api.patch("/agents/assistant", json={"knowledge_bases": []})
    assert (await env.api.delete(f"/knowledge-bases/{kb_id}")).status_code == 204
