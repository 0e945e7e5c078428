"""Website sources against a real website on loopback: exactly what is and isn't indexed."""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

import pytest

from callable_agents.core.bootstrap import running
from callable_agents.core.config import Settings
from callable_agents.core.errors import InvalidInput
from callable_agents.plugins.loaders.web import (
    Fetcher,
    FetchError,
    normalise_url,
    site_of,
)
from tests.knowledge.conftest import KnowledgeEnv, TestSite, html, make_env


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def indexed_pages(env: KnowledgeEnv, source_id: str) -> dict[str, str]:
    """URL path -> title of every page with passages."""
    return {urlsplit(chunk.meta["url"]).path: chunk.meta["title"] for chunk in await env.chunks(source_id)}


async def test_crawl_indexes_the_site_within_bounds_and_rules(env: KnowledgeEnv, site: TestSite) -> None:
    source = await env.add_and_ingest(
        "url", location=site.url("/"), options={"mode": "crawl", "max_depth": 2, "max_page_bytes": 100_000}
    )
    assert (source.status, source.error) == ("ready", None)
    assert await indexed_pages(env, source.id) == {
        "/": "Harbour Bikes | Home",
        "/about": "About us | Harbour Bikes",
        "/services": "Services | Harbour Bikes",
        "/contact": "Contact | Harbour Bikes",  # reached through the /old-contact redirect, final URL kept
        "/privacy": "Privacy | Harbour Bikes",  # linked from the footer: a page of the site like any other
        "/team": "Our team | Harbour Bikes",  # depth 2
    }
    assert source.document_count == 6
    # Never requested: disallowed by robots.txt, beyond the depth limit, off-site, an image.
    assert site.requested("/private/staff") == 0
    assert site.requested("/team/history") == 0
    assert site.requested("/logo.png") == 0
    assert site.requested("/robots.txt") == 1
    # Requested and skipped, each with a note saying why.
    assert site.requested("/missing") == 1 and site.requested("/big") == 1
    notes = "\n".join(env.notes)
    assert f"skipped {site.url('/private/staff')}: disallowed by robots.txt" in notes
    assert f"skipped {site.url('/missing')}: HTTP 404" in notes
    assert f"skipped {site.url('/big')}: page too large" in notes
    # Main content only: navigation, header, footer and the cookie banner are gone.
    texts = "\n".join(chunk.text for chunk in await env.chunks(source.id))
    for boilerplate in ("Copyright 2024", "We use cookies", "Partner", "Catalogue"):
        assert boilerplate not in texts
    assert "alarm code" not in texts

    [best] = await env.search("how much does it cost to rent an e-bike?", k=1)
    assert best.url == site.url("/services") and best.title == "Services | Harbour Bikes"
    assert "$45 a day" in best.text


async def test_sitemap_indexes_its_pages_on_the_site_only(env: KnowledgeEnv, site: TestSite) -> None:
    source = await env.add_and_ingest("url", location=site.url("/sitemap.xml"), options={"mode": "sitemap"})
    assert source.status == "ready", source.error
    assert set(await indexed_pages(env, source.id)) == {"/about", "/services", "/contact"}
    assert site.requested("/private/staff") == 0 and site.requested("/team") == 0
    assert "skipped https://elsewhere.example/x: outside the site" in env.notes


async def test_single_page_and_its_failures(env: KnowledgeEnv, site: TestSite) -> None:
    one = await env.add_and_ingest("url", location=site.url("/about"))
    assert one.status == "ready" and set(await indexed_pages(env, one.id)) == {"/about"}
    assert site.requested("/team") == 0  # a single page follows no links

    missing = await env.add_and_ingest("url", location=site.url("/missing"))
    assert (missing.status, missing.error) == ("failed", f"could not index {site.url('/missing')}: HTTP 404")
    disallowed = await env.add_and_ingest("url", location=site.url("/private/staff"))
    assert disallowed.error == f"could not index {site.url('/private/staff')}: disallowed by robots.txt"
    redirected = await env.add_and_ingest("url", location=site.url("/old-contact"))
    assert set(await indexed_pages(env, redirected.id)) == {"/contact"}

    dead_url = f"http://127.0.0.1:{closed_port()}/services"
    unreachable = await env.add_and_ingest("url", location=dead_url)
    assert unreachable.status == "failed"
    assert (unreachable.error or "").startswith(f"could not index {dead_url}: could not connect to 127.0.0.1")

    # The failures touched nothing else.
    [best] = await env.search("who founded the shop", k=1)
    assert best.source_id == one.id and "Maria Lopez" in best.text


async def test_changed_page_replaces_its_passages_on_refresh(env: KnowledgeEnv, site: TestSite) -> None:
    from callable_agents.core.knowledge import refresh_sources

    source = await env.add_and_ingest("url", location=site.url("/"), options={"mode": "crawl", "max_depth": 1})
    before = {chunk.meta["url"]: chunk for chunk in await env.chunks(source.id)}
    embedded = env.embedded()

    site.routes["/services"] = html(
        "Services | Harbour Bikes", "<h1>Services</h1><h2>Repairs</h2><p>A standard tune-up now costs $75.</p>"
    )
    [refreshed] = await refresh_sources(env.runtime, env.workspace_id, knowledge_base_id=env.knowledge_base_id)
    assert refreshed.status == "ready"
    after = {chunk.meta["url"]: chunk for chunk in await env.chunks(source.id)}
    assert set(after) == set(before)
    # Only the changed page's passage was embedded again; the others kept their vectors.
    assert env.embedded() - embedded == 1
    for url, chunk in after.items():
        assert chunk.embedding == before[url].embedding or url == site.url("/services")
    texts = " ".join(chunk.text for chunk in after.values())
    assert "$75" in texts and "$65" not in texts and "$45 a day" not in texts
    [best] = await env.search("tune-up price", k=1)
    assert "$75" in best.text


async def test_crawl_bounds_on_pages_and_request_time(env: KnowledgeEnv, site: TestSite) -> None:
    site.routes["/about"].delay = 1.0
    source = await env.add_and_ingest(
        "url",
        location=site.url("/"),
        options={"mode": "crawl", "max_pages": 2, "request_timeout_seconds": 0.3, "max_page_bytes": 100_000},
    )
    assert source.status == "ready" and source.document_count == 2
    assert set(await indexed_pages(env, source.id)) == {"/", "/services"}  # /about timed out; then the page limit
    assert f"skipped {site.url('/about')}: 127.0.0.1 did not answer in time" in env.notes
    assert site.requested("/contact") == 0 and site.requested("/old-contact") == 0


async def test_private_addresses_are_refused_without_the_setting(kb_settings: Settings, site: TestSite) -> None:
    settings = kb_settings.model_copy(update={"allow_private_urls": False})
    async with running(settings) as runtime:
        env = await make_env(runtime)
        for url in (
            site.url("/"),
            "http://localhost:8000/",
            "http://[::1]/",
            "http://169.254.169.254/latest/",
            "http://10.0.0.7/",
        ):
            with pytest.raises(InvalidInput, match=r"is a private, loopback or link-local address"):
                await env.add("url", location=url)
    assert site.requested("/") == 0

    # A name that resolves to a private address is caught when fetched (after DNS).
    fetcher = Fetcher(allow_private=False, request_timeout=5)
    try:
        with pytest.raises(FetchError, match=r"resolves to 127\.0\.0\.1, a private, loopback"):
            await fetcher.fetch(f"http://localhost:{site.server.server_address[1]}/", max_bytes=1000)
    finally:
        await fetcher.aclose()
    assert site.requested("/") == 0


async def test_redirects_are_checked_again(site: TestSite) -> None:
    site.routes["/to-metadata"] = html("x", "")
    site.routes["/to-metadata"].status = 302
    site.routes["/to-metadata"].headers = {"Location": "http://169.254.169.254/latest/meta-data/"}
    fetcher = Fetcher(allow_private=True, request_timeout=5)

    async def refuse_link_local(url: str) -> str | None:
        return "which is link-local" if "169.254." in url else None

    try:
        with pytest.raises(
            FetchError, match=r"redirected to http://169\.254\.169\.254/latest/meta-data/, which is link-local"
        ):
            await fetcher.fetch(site.url("/to-metadata"), max_bytes=10_000, allow_hop=refuse_link_local)
    finally:
        await fetcher.aclose()


async def test_bad_urls_are_refused_when_added(env: KnowledgeEnv) -> None:
    for url, message in (
        ("ftp://example.com/file", "expected an http:// or https:// URL with a host"),
        ("https://user:pw@example.com/", "credentials in the URL are not allowed"),
        ("not a url", "expected an http:// or https:// URL without spaces"),
    ):
        with pytest.raises(InvalidInput, match=message):
            await env.add("url", location=url)
    with pytest.raises(InvalidInput, match=r"options.max_pages: Input should be greater than or equal to 1"):
        await env.add("url", location="https://example.com/", options={"mode": "crawl", "max_pages": 0})
    with pytest.raises(InvalidInput, match=r"options.mode: Input should be 'page', 'crawl' or 'sitemap'"):
        await env.add("url", location="https://example.com/", options={"mode": "everything"})


def test_url_identity() -> None:
    assert normalise_url("HTTP://Example.COM:80/a?b=1#top") == "http://example.com/a?b=1"
    assert normalise_url("https://example.com") == "https://example.com/"
    assert site_of("https://www.example.com/x") == site_of("http://example.com/y")
    assert site_of("http://example.com:8080/") != site_of("http://example.com/")
