"""Knowledge Base pages over HTTP: knowledge bases made, renamed and deleted (refused while an
agent uses one), sources added from text, files and a loopback website and indexed in the
server's background, failures shown with their reason and retried, re-sync and removal, the
retrieval test; bad input refused naming the field or file with nothing stored; another
workspace's ids not found on any route; knowledge text escaped; CSRF required."""

from __future__ import annotations

import asyncio
import html
import re
import time
from pathlib import Path

import httpx

from callable_agents.core.knowledge import IngestProgress, add_source, list_knowledge_bases, list_sources
from callable_agents.core.models import Source
from callable_agents.core.runtime import Runtime
from callable_agents.core.store.agents import create_or_update_agent
from callable_agents.dashboard.knowledge import SourceRow
from tests.dashboard.support import DashboardClient, add_member, dashboard_server, signed_in_client
from tests.knowledge.conftest import Response, TestSite, html as site_page

FAQ = "Bella's Bakery FAQ.\n\nSourdough loaves come out of the oven at 8:30 every morning.\n\nOn Sundays the bakery is closed."


async def new_kb(client: DashboardClient, name: str = "Bakery FAQ") -> str:
    created = await client.post("/dashboard/knowledge", {"name": name})
    assert created.status_code == 303, created.text[:500]
    found = re.fullmatch(r"/dashboard/knowledge/([0-9a-f]+)\?created", created.headers["location"])
    assert found, created.headers["location"]
    return found.group(1)


async def sources_of(runtime: Runtime, workspace_id: str, kb_id: str) -> list[Source]:
    async with runtime.db.sessions() as session:
        return list(await list_sources(session, workspace_id, kb_id))


async def settled(
    runtime: Runtime, workspace_id: str, kb_id: str, count: int, *, status: str | None = None, timeout: float = 60
) -> list[Source]:
    """The knowledge base's sources once ``count`` of them exist and none is pending or
    indexing (or, with ``status``, all have that status)."""
    deadline = time.monotonic() + timeout
    wanted = (status,) if status else ("ready", "failed")
    while True:
        sources = await sources_of(runtime, workspace_id, kb_id)
        if len(sources) == count and all(source.status in wanted for source in sources):
            return sources
        if time.monotonic() > deadline:
            raise AssertionError(f"not settled: {[(s.location, s.status, s.error) for s in sources]}")
        await asyncio.sleep(0.1)


async def test_pasted_text_indexes_in_the_background_and_the_retrieval_test_finds_it(tmp_path: Path) -> None:
    async with dashboard_server(tmp_path) as server:
        owner = await add_member(server.runtime)
        async with signed_in_client(server, owner) as client:
            kb_id = await new_kb(client)
            added = await client.post(f"/dashboard/knowledge/{kb_id}/texts", {"title": "Opening hours", "text": FAQ})
            assert added.status_code == 303 and "?added=" in added.headers["location"]
            # The request returned before indexing finished; the page polls until all settle.
            page = await client.get(added.headers["location"])
            assert "Added Opening hours: it is being indexed in the background." in page.text
            [source] = await settled(server.runtime, owner.workspace_id, kb_id, 1)
            assert source.status == "ready" and source.chunk_count >= 1
            fragment = await client.get(f"/dashboard/knowledge/{kb_id}/sources")
            assert fragment.status_code == 200 and "hx-trigger" not in fragment.text  # polling stops
            assert "status-ready" in fragment.text and "<html" not in fragment.text

            results = await client.get(f"/dashboard/knowledge/{kb_id}/search", params={"q": "when is sourdough ready?"})
            assert results.status_code == 200
            passages = re.findall(r'class="passage-text">([^<]*)<', results.text)
            assert passages and "8:30" in html.unescape(passages[0])
            assert re.search(r"score \d\.\d{4}", results.text) and "#1" in results.text
            fragment_results = await client.get(
                f"/dashboard/knowledge/{kb_id}/search", params={"q": "sourdough", "k": "1"}, headers={"HX-Request": "true"}
            )
            assert fragment_results.text.lstrip().startswith('<div id="search-results"')
            assert fragment_results.text.count('class="passage"') == 1

            empty_question = await client.get(f"/dashboard/knowledge/{kb_id}/search", params={"q": "  "})
            assert empty_question.status_code == 422 and "question: this field is required" in empty_question.text
            bad_k = await client.get(f"/dashboard/knowledge/{kb_id}/search", params={"q": "bread", "k": "500"})
            assert bad_k.status_code == 422 and "k: expected a whole number of passages from 1 to 10" in bad_k.text


async def test_a_while_indexing_page_polls_and_shows_the_status(tmp_path: Path) -> None:
    with TestSite() as site:
        site.routes["/slow"] = Response(body=site_page("Slow", "<p>Deliveries leave at noon.</p>").body, delay=1.5)
        async with dashboard_server(tmp_path) as server:
            owner = await add_member(server.runtime)
            async with signed_in_client(server, owner) as client:
                kb_id = await new_kb(client)
                added = await client.post(f"/dashboard/knowledge/{kb_id}/urls", {"url": site.url("/slow"), "options.mode": "page"})
                assert added.status_code == 303, added.text[:800]
                fragment = await client.get(f"/dashboard/knowledge/{kb_id}/sources")
                assert 'hx-trigger="every 1s"' in fragment.text
                assert re.search(r"status-(pending|indexing)", fragment.text)
                assert re.search(r"queued|loading|indexing|waiting", fragment.text)
                [source] = await settled(server.runtime, owner.workspace_id, kb_id, 1)
                assert source.status == "ready", source.error


async def test_files_several_at_once_and_bad_files_refused_naming_them(tmp_path: Path) -> None:
    async with dashboard_server(tmp_path, max_upload_bytes=4096) as server:
        owner = await add_member(server.runtime)
        async with signed_in_client(server, owner) as client:
            kb_id = await new_kb(client)
            path = f"/dashboard/knowledge/{kb_id}/files"
            token = {"csrf_token": client.csrf_token}
            none = await client.http.post(path, data=token, files={"files": ("", b"", "application/octet-stream")})
            assert none.status_code == 422 and "files: choose one or more files" in none.text

            too_large = await client.http.post(
                path,
                data=token,
                files=[("files", ("hours.txt", b"Open 8 to 6.", "text/plain")), ("files", ("catalogue.txt", b"x" * 5000, "text/plain"))],
            )
            assert too_large.status_code == 422
            assert "catalogue.txt: 5,000 bytes is over the upload limit of 4,096 bytes" in too_large.text
            unknown = await client.http.post(
                path,
                data=token,
                files=[("files", ("hours.txt", b"Open 8 to 6.", "text/plain")), ("files", ("logo.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 64, "image/png"))],
            )
            assert unknown.status_code == 422 and "logo.png: unsupported file type" in unknown.text
            assert "nothing was added" in unknown.text
            assert await sources_of(server.runtime, owner.workspace_id, kb_id) == []  # all or nothing

            both = await client.http.post(
                path,
                data=token,
                files=[
                    ("files", ("hours.txt", b"The bakery opens at 7 in the morning.", "text/plain")),
                    ("files", ("cakes.md", b"# Cakes\n\nBirthday cakes need two days' notice.", "text/markdown")),
                ],
            )
            assert both.status_code == 303 and "?added=" in both.headers["location"]
            sources = await settled(server.runtime, owner.workspace_id, kb_id, 2)
            assert sorted((s.location, s.status) for s in sources) == [("cakes.md", "ready"), ("hours.txt", "ready")]
            page = await client.get(both.headers["location"])
            assert "Added hours.txt and cakes.md: they are being indexed in the background." in page.text


async def test_the_upload_route_takes_bodies_larger_than_other_requests(tmp_path: Path) -> None:
    async with dashboard_server(tmp_path, max_request_bytes=2048, max_upload_bytes=8192) as server:
        owner = await add_member(server.runtime)
        async with signed_in_client(server, owner) as client:
            kb_id = await new_kb(client)
            text = ("Croissants are baked fresh every morning. " * 120).encode()[:6000]
            uploaded = await client.http.post(
                f"/dashboard/knowledge/{kb_id}/files", data={"csrf_token": client.csrf_token}, files={"files": ("croissants.txt", text, "text/plain")}
            )
            assert uploaded.status_code == 303, uploaded.text[:300]
            pasted = await client.post(f"/dashboard/knowledge/{kb_id}/texts", {"title": "Long", "text": text.decode()})
            assert pasted.status_code == 413  # only uploads may be large


async def test_text_and_url_bad_input_is_refused_naming_the_field_and_kept(tmp_path: Path) -> None:
    async with dashboard_server(tmp_path) as server:
        owner = await add_member(server.runtime)
        async with signed_in_client(server, owner) as client:
            kb_id = await new_kb(client)
            empty = await client.post(f"/dashboard/knowledge/{kb_id}/texts", {"title": "Hours", "text": "   "})
            assert empty.status_code == 422 and "text: expected some text, got nothing" in empty.text
            assert 'value="Hours"' in empty.text  # kept as typed
            untitled = await client.post(f"/dashboard/knowledge/{kb_id}/texts", {"title": "", "text": "Open daily"})
            assert untitled.status_code == 422 and "title: this field is required" in untitled.text
            assert ">Open daily</textarea>" in untitled.text

            bad_url = await client.post(f"/dashboard/knowledge/{kb_id}/urls", {"url": "ftp://files.example/menu", "options.mode": "page"})
            assert bad_url.status_code == 422 and "url: expected an http:// or https:// URL" in bad_url.text
            assert 'value="ftp://files.example/menu"' in bad_url.text
            bad_option = await client.post(
                f"/dashboard/knowledge/{kb_id}/urls",
                {"url": "https://example.com/", "options.mode": "crawl", "options.max_pages": "0"},
            )
            assert bad_option.status_code == 422 and "max_pages" in bad_option.text and 'aria-invalid="true"' in bad_option.text
            not_number = await client.post(
                f"/dashboard/knowledge/{kb_id}/urls", {"url": "https://example.com/", "options.max_depth": "deep"}
            )
            assert not_number.status_code == 422 and "max_depth: expected a whole number" in not_number.text
            bad_interval = await client.post(
                f"/dashboard/knowledge/{kb_id}/urls", {"url": "https://example.com/", "refresh_every": "5"}
            )
            assert bad_interval.status_code == 422 and "refresh_every: expected one of the listed intervals" in bad_interval.text
            assert await sources_of(server.runtime, owner.workspace_id, kb_id) == []

            no_name = await client.post("/dashboard/knowledge", {"name": " "})
            assert no_name.status_code == 422 and "name: this field is required" in no_name.text
            await new_kb(client, "Menu")
            duplicate = await client.post("/dashboard/knowledge", {"name": "Menu"})
            assert duplicate.status_code == 422 and "name: knowledge base &#39;Menu&#39; already exists" in duplicate.text
            unknown_model = await client.post("/dashboard/knowledge", {"name": "Other", "embedding_model": "nonsense"})
            assert unknown_model.status_code == 422
            assert "embedding_model: unknown embeddings type &#39;nonsense&#39;; available:" in unknown_model.text
            assert 'id="f-embedding_model"' in unknown_model.text and 'aria-invalid="true"' in unknown_model.text
            assert 'value="Other"' in unknown_model.text


async def test_a_failed_url_shows_its_reason_and_retry_indexes_it(tmp_path: Path) -> None:
    with TestSite() as site:
        site.routes["/menu"] = Response(status=404, body=b"not found", content_type="text/plain")
        async with dashboard_server(tmp_path) as server:
            owner = await add_member(server.runtime)
            async with signed_in_client(server, owner) as client:
                kb_id = await new_kb(client)
                added = await client.post(
                    f"/dashboard/knowledge/{kb_id}/urls",
                    {"url": site.url("/menu"), "options.mode": "page", "refresh_every": "86400"},
                )
                assert added.status_code == 303, added.text[:800]
                [failed] = await settled(server.runtime, owner.workspace_id, kb_id, 1)
                assert failed.status == "failed" and failed.error and failed.refresh_interval_seconds == 86400
                page = await client.get(f"/dashboard/knowledge/{kb_id}")
                assert "HTTP 404" in failed.error and html.escape(failed.error) in page.text
                assert "re-fetched every day" in page.text
                assert f'aria-label="Retry {site.url("/menu")}"' in page.text

                site.routes["/menu"] = site_page("Menu", "<h1>Menu</h1><p>Rye bread costs four dollars.</p>")
                retried = await client.post(f"/dashboard/knowledge/{kb_id}/sources/{failed.id}/resync")
                assert retried.status_code == 303 and retried.headers["location"].endswith("?resynced=1")
                [ready] = await settled(server.runtime, owner.workspace_id, kb_id, 1, status="ready")
                assert ready.error is None and ready.chunk_count >= 1

                resync_all = await client.post(f"/dashboard/knowledge/{kb_id}/resync")
                assert resync_all.status_code == 303 and resync_all.headers["location"].endswith("?resynced=1")
                for _ in range(100):
                    if site.requested("/menu") == 3:
                        break
                    await asyncio.sleep(0.1)
                assert site.requested("/menu") == 3
                await settled(server.runtime, owner.workspace_id, kb_id, 1, status="ready")

                removed = await client.post(f"/dashboard/knowledge/{kb_id}/sources/{ready.id}/remove")
                assert removed.status_code == 303
                assert await sources_of(server.runtime, owner.workspace_id, kb_id) == []
                results = await client.get(f"/dashboard/knowledge/{kb_id}/search", params={"q": "rye bread"})
                assert "Rye bread" not in results.text and "No passage matches" in results.text


async def test_rename_and_delete_refused_while_an_agent_uses_it(tmp_path: Path) -> None:
    async with dashboard_server(tmp_path) as server:
        owner = await add_member(server.runtime)
        async with signed_in_client(server, owner) as client:
            kb_id = await new_kb(client)
            await new_kb(client, "Menu")
            taken = await client.post(f"/dashboard/knowledge/{kb_id}/rename", {"name": "Menu"})
            assert taken.status_code == 422 and "name: knowledge base &#39;Menu&#39; already exists" in taken.text
            renamed = await client.post(f"/dashboard/knowledge/{kb_id}/rename", {"name": "Shop FAQ"})
            assert renamed.status_code == 303
            async with server.runtime.db.session() as session:
                await create_or_update_agent(
                    session,
                    server.runtime,
                    owner.workspace_id,
                    {"name": "front-desk", "system_prompt": "Help customers.", "knowledge_bases": ["Shop FAQ"]},
                )
            listing = await client.get("/dashboard/knowledge")
            assert "Shop FAQ" in listing.text and "front-desk" in listing.text
            refused = await client.post(f"/dashboard/knowledge/{kb_id}/delete")
            assert refused.status_code == 409 and "used by agent(s) front-desk" in refused.text
            async with server.runtime.db.sessions() as session:
                assert {kb.name for kb in await list_knowledge_bases(session, owner.workspace_id)} == {"Shop FAQ", "Menu"}
            menu_id = re.search(r'href="/dashboard/knowledge/([0-9a-f]+)">Menu<', listing.text)
            assert menu_id is not None
            deleted = await client.post(f"/dashboard/knowledge/{menu_id.group(1)}/delete")
            assert deleted.status_code == 303 and deleted.headers["location"] == "/dashboard/knowledge?deleted"
            assert (await client.get(f"/dashboard/knowledge/{menu_id.group(1)}")).status_code == 404


async def test_knowledge_text_is_escaped_in_the_table_and_the_retrieval_test(tmp_path: Path) -> None:
    async with dashboard_server(tmp_path) as server:
        owner = await add_member(server.runtime)
        async with signed_in_client(server, owner) as client:
            kb_id = await new_kb(client, "<b>KB</b>")
            title = '<script>alert("title")</script>'
            text = 'Our <img src=x onerror=alert(1)> croissants are buttery. <a href="javascript:alert(2)">x</a>'
            added = await client.post(f"/dashboard/knowledge/{kb_id}/texts", {"title": title, "text": text})
            assert added.status_code == 303
            await settled(server.runtime, owner.workspace_id, kb_id, 1)
            for response in (
                await client.get(added.headers["location"]),  # the notice names the source
                await client.get(f"/dashboard/knowledge/{kb_id}/search", params={"q": "croissants buttery"}),
                await client.get("/dashboard/knowledge"),
            ):
                assert "<script>alert" not in response.text and "<img src=x" not in response.text
                assert "<b>KB</b>" not in response.text and "&lt;b&gt;KB&lt;/b&gt;" in response.text
                assert 'href="javascript:' not in response.text
            notice = await client.get(added.headers["location"])
            assert "Added &lt;script&gt;alert(&#34;title&#34;)&lt;/script&gt;: it is being indexed" in notice.text
            results = await client.get(f"/dashboard/knowledge/{kb_id}/search", params={"q": "croissants buttery"})
            assert "&lt;script&gt;alert(&#34;title&#34;)&lt;/script&gt;" in results.text
            assert "&lt;img src=x onerror=alert(1)&gt;" in results.text


async def test_an_add_notice_names_only_this_knowledge_bases_sources_never_the_urls_text(tmp_path: Path) -> None:
    """The notice after an add names the sources whose ids its redirect carries, read from
    the database: an id of another knowledge base (or workspace), or any other text put in
    the link, shows nothing."""
    async with dashboard_server(tmp_path) as server:
        owner = await add_member(server.runtime)
        async with signed_in_client(server, owner) as client:
            kb_id, other_kb = await new_kb(client, "Menu"), await new_kb(client, "Staff notes")
            added = await client.post(f"/dashboard/knowledge/{other_kb}/texts", {"title": "Salaries", "text": "Private."})
            other_source = added.headers["location"].split("?added=", 1)[1]
            mine = await client.post(f"/dashboard/knowledge/{kb_id}/texts", {"title": "Hours", "text": "Open at 7."})
            my_source = mine.headers["location"].split("?added=", 1)[1]
            for added_param, expected in (
                (f"{my_source},{other_source}", "Added Hours: it is being indexed in the background."),
                (other_source, None),
                ("Injected words", None),
                ("", None),
            ):
                page = await client.get(f"/dashboard/knowledge/{kb_id}", params={"added": added_param})
                assert page.status_code == 200
                assert "Salaries" not in page.text and "Injected" not in page.text
                if expected is None:
                    assert "being indexed in the background" not in page.text
                else:
                    assert expected in page.text


async def test_another_workspaces_knowledge_is_not_found_on_any_route(tmp_path: Path) -> None:
    async with dashboard_server(tmp_path) as server:
        owner = await add_member(server.runtime)
        other = await add_member(server.runtime, "Other Shop", email="other@example.com")
        async with signed_in_client(server, other) as theirs:
            their_kb = await new_kb(theirs, "Secret recipes")
            assert (await theirs.post(f"/dashboard/knowledge/{their_kb}/texts", {"title": "Secret", "text": "Add saffron."})).status_code == 303
            [their_source] = await settled(server.runtime, other.workspace_id, their_kb, 1)
        async with signed_in_client(server, owner) as client:
            mine = await new_kb(client)
            listing = await client.get("/dashboard/knowledge")
            assert "Secret recipes" not in listing.text
            source = their_source.id
            gets = [
                f"/dashboard/knowledge/{their_kb}",
                f"/dashboard/knowledge/{their_kb}/sources",
                f"/dashboard/knowledge/{their_kb}/search?q=saffron",
            ]
            for path in gets:
                response = await client.get(path)
                assert response.status_code == 404, path
                assert "saffron" not in response.text.lower()
            posts: list[tuple[str, dict[str, str]]] = [
                (f"/dashboard/knowledge/{their_kb}/rename", {"name": "Mine now"}),
                (f"/dashboard/knowledge/{their_kb}/delete", {}),
                (f"/dashboard/knowledge/{their_kb}/texts", {"title": "x", "text": "y"}),
                (f"/dashboard/knowledge/{their_kb}/urls", {"url": "https://example.com/"}),
                (f"/dashboard/knowledge/{their_kb}/files", {}),
                (f"/dashboard/knowledge/{their_kb}/resync", {}),
                (f"/dashboard/knowledge/{their_kb}/sources/{source}/resync", {}),
                (f"/dashboard/knowledge/{their_kb}/sources/{source}/remove", {}),
                # my knowledge base with their source id
                (f"/dashboard/knowledge/{mine}/sources/{source}/resync", {}),
                (f"/dashboard/knowledge/{mine}/sources/{source}/remove", {}),
            ]
            for path, data in posts:
                response = await client.post(path, data)
                assert response.status_code == 404, (path, response.status_code)
            # Their knowledge base and source are untouched.
            [still] = await sources_of(server.runtime, other.workspace_id, their_kb)
            assert still.id == source and still.status == "ready"
            async with server.runtime.db.sessions() as session:
                assert [kb.name for kb in await list_knowledge_bases(session, other.workspace_id)] == ["Secret recipes"]


async def test_posts_without_the_csrf_token_are_refused(tmp_path: Path) -> None:
    async with dashboard_server(tmp_path) as server:
        owner = await add_member(server.runtime)
        async with signed_in_client(server, owner) as client:
            kb_id = await new_kb(client)
            for path, data in (
                ("/dashboard/knowledge", {"name": "Sneaky"}),
                (f"/dashboard/knowledge/{kb_id}/texts", {"title": "Sneaky", "text": "added by another site"}),
                (f"/dashboard/knowledge/{kb_id}/delete", {}),
            ):
                refused = await client.post(path, data, csrf=False)
                assert refused.status_code == 403 and "csrf_token" in refused.text, path
            assert await sources_of(server.runtime, owner.workspace_id, kb_id) == []
            async with server.runtime.db.sessions() as session:
                assert [kb.name for kb in await list_knowledge_bases(session, owner.workspace_id)] == ["Bakery FAQ"]
        async with httpx.AsyncClient(base_url=server.url) as anonymous:
            response = await anonymous.get(f"/dashboard/knowledge/{kb_id}")
            assert response.status_code == 303 and "/dashboard/sign-in" in response.headers["location"]


async def test_sources_are_shown_fifty_a_page_newest_first(tmp_path: Path) -> None:
    async with dashboard_server(tmp_path) as server:
        owner = await add_member(server.runtime)
        runtime = server.runtime
        async with signed_in_client(server, owner) as client:
            kb_id = await new_kb(client)
            async with runtime.db.session() as session:
                for number in range(55):
                    await add_source(
                        session, owner.workspace_id, kb_id, runtime=runtime, kind="text",
                        location=f"Note {number:02d}", title=f"Note {number:02d}", content=b"Some text.",
                    )
                    await session.flush()
            first = await client.get(f"/dashboard/knowledge/{kb_id}")
            names = re.findall(r'class="source-name">(Note \d\d)<', first.text)
            assert len(names) == 50 and names[0] == "Note 54" and "Note 04" not in names
            assert "Page 1 of 2" in first.text and f'href="/dashboard/knowledge/{kb_id}?page=2"' in first.text
            # Nothing of this page is pending in this process's queue, yet the page polls
            # while any source of the knowledge base is still on its way.
            assert f'hx-get="/dashboard/knowledge/{kb_id}/sources"' in first.text
            second = await client.get(f"/dashboard/knowledge/{kb_id}/sources", params={"page": "2"})
            assert re.findall(r'class="source-name">(Note \d\d)<', second.text) == [f"Note {n:02d}" for n in range(4, -1, -1)]
            assert f'hx-get="/dashboard/knowledge/{kb_id}/sources?page=2"' in second.text
            beyond = await client.get(f"/dashboard/knowledge/{kb_id}", params={"page": "99"})
            assert "Page 2 of 2" in beyond.text


def test_an_indexing_source_says_what_it_is_doing() -> None:
    def row(status: str, progress: IngestProgress | None = None, queued: bool = False) -> SourceRow:
        return SourceRow(Source(id="s1", kind="url", location="https://x.test/", title="", status=status), progress, queued)

    assert row("pending", queued=True).progress_text == "queued"
    assert row("pending").progress_text == "waiting to be indexed"
    assert row("indexing").progress_text == "indexing"  # another process has it: no detail here
    assert row("indexing", IngestProgress("s1", "loading", 12)).progress_text == "loading: 12 document(s) so far"
    assert row("indexing", IngestProgress("s1", "embedding", 30, 120)).progress_text == "embedding 30 of 120 passage(s)"
    assert row("indexing", IngestProgress("s1", "storing", 0, 120)).progress_text == "storing 120 passage(s)"
    assert row("ready").progress_text == "" and row("ready").settled and not row("indexing").settled
    assert row("ready").name == "https://x.test/"
