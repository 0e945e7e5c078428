"""Website URLs: one page, a bounded crawl from a start URL, or the pages of a sitemap.

Every fetch resolves the host and refuses private, loopback, link-local and reserved
addresses (unless ``CALLABLE_ALLOW_PRIVATE_URLS``), then connects to the address it checked
— so DNS can't change its answer in between — and does the same again for each redirect
hop. robots.txt is honoured for every page (RFC 9309: a missing robots.txt allows all, an
unreachable one disallows all), including its crawl delay up to a few seconds.

A crawl stays on the start URL's site (same host, ``www.`` ignored, same port) and is
bounded by pages, link depth, bytes per page, bytes in total and time. Pages that can't be
used (404, too large, disallowed, off-site redirect, not HTML) are skipped with a note; the
source fails only when no page at all could be indexed. Each page's main content is kept
(navigation, header, footer and the like removed) with its title and final URL.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import time
import xml.etree.ElementTree as ElementTree
import zlib
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Literal
from urllib.parse import urljoin, urlsplit, urlunsplit
from urllib.robotparser import RobotFileParser

import httpx
from pydantic import BaseModel, ConfigDict, Field

from callable_agents.plugin import (
    Document,
    InvalidInput,
    LoadError,
    LoadRequest,
    LoaderType,
    SourceDraft,
    hookimpl,
    is_public_address,
    pin_to_address,
)
from callable_agents.plugins.loaders import html_content

log = logging.getLogger(__name__)

USER_AGENT_TOKEN = "CallableAgentsBot"
USER_AGENT = f"{USER_AGENT_TOKEN}/0.1 (knowledge base indexer; +https://github.com/callable-agents)"
MAX_REDIRECTS = 5
MAX_ROBOTS_BYTES = 512_000
MAX_SITEMAP_BYTES = 10_000_000
MAX_SITEMAPS = 20
MAX_CRAWL_DELAY_SECONDS = 5.0
HTML_TYPES = ("text/html", "application/xhtml+xml")
TEXT_TYPES = ("text/plain",)
PDF_TYPES = ("application/pdf",)
REDIRECT_CODES = (301, 302, 303, 307, 308)
# Links to these are not pages: the crawler doesn't queue them.
ASSET_SUFFIXES = {
    ".jpg",
    ".jpeg",
    ".png",
    ".gif",
    ".webp",
    ".svg",
    ".ico",
    ".bmp",
    ".css",
    ".js",
    ".mjs",
    ".json",
    ".xml",
    ".zip",
    ".gz",
    ".tar",
    ".rar",
    ".7z",
    ".mp3",
    ".mp4",
    ".mov",
    ".avi",
    ".webm",
    ".wav",
    ".woff",
    ".woff2",
    ".ttf",
    ".eot",
    ".exe",
    ".dmg",
    ".apk",
    ".doc",
    ".xls",
    ".xlsx",
    ".ppt",
    ".pptx",
    ".csv",
    ".rss",
    ".atom",
}


class UrlOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mode: Literal["page", "crawl", "sitemap"] = Field(
        default="page",
        description="page: this URL only; crawl: follow links on the site; sitemap: the URL is a sitemap.",
    )
    max_pages: int = Field(default=50, ge=1, le=5000, description="Most pages indexed.")
    max_depth: int = Field(default=3, ge=0, le=20, description="Most links followed from the start page (crawl).")
    max_page_bytes: int = Field(default=5_000_000, ge=1024, le=100_000_000, description="Larger pages are skipped.")
    max_total_bytes: int = Field(default=100_000_000, ge=1024, le=2_000_000_000, description="Stop after this much.")
    timeout_seconds: float = Field(default=600.0, gt=0, le=7200, description="Stop crawling after this long.")
    request_timeout_seconds: float = Field(
        default=20.0, gt=0, le=300, description="Give up on one request after this long."
    )


class FetchError(Exception):
    """A URL could not be fetched; the message is safe to show."""


class PageTooLarge(FetchError):
    pass


@dataclass(frozen=True)
class Fetched:
    url: str  # after redirects
    status: int
    content_type: str
    charset: str | None
    body: bytes


# --------------------------------------------------------------------------- URLs


def check_url(url: str) -> str:
    """An absolute http(s) URL with a host and no credentials; InvalidInput otherwise."""
    if not url or any(char.isspace() for char in url):
        raise InvalidInput("location: expected an http:// or https:// URL without spaces")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a malformed port
    except ValueError:
        raise InvalidInput("location: expected an http:// or https:// URL") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise InvalidInput(f"location: expected an http:// or https:// URL with a host, got {url[:200]!r}")
    if parts.username is not None or parts.password is not None:
        raise InvalidInput("location: credentials in the URL are not allowed")
    try:
        httpx.URL(url)  # the fetcher must be able to parse it too (0177.0.0.1 is not an address to it)
    except httpx.InvalidURL as exc:
        raise InvalidInput(f"location: expected a URL with a valid host ({str(exc)[:120]})") from None
    return url


def normalise_url(url: str) -> str:
    """The crawler's identity of a page: lower-case scheme and host, no default port, no fragment."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    netloc = host if port is None or (scheme, port) in (("http", 80), ("https", 443)) else f"{host}:{port}"
    return urlunsplit((scheme, netloc, parts.path or "/", parts.query, ""))


def site_of(url: str) -> tuple[str, int]:
    """Host (without ``www.``) and port: what "the same site" means for a crawl."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower().removeprefix("www.")
    port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
    if port == 443:  # http and https of one host are the same site
        port = 80
    return host, port


def _is_asset(url: str) -> bool:
    return PurePosixPath(urlsplit(url).path.lower()).suffix in ASSET_SUFFIXES


# --------------------------------------------------------------------------- fetching


class Fetcher:
    """GETs with the address guard, manual redirects (each hop checked) and a byte cap."""

    def __init__(self, *, allow_private: bool, request_timeout: float) -> None:
        self.allow_private = allow_private
        self.client = httpx.AsyncClient(
            follow_redirects=False,
            timeout=httpx.Timeout(request_timeout),
            headers={"User-Agent": USER_AGENT, "Accept": "text/html,application/xhtml+xml,text/plain;q=0.9,*/*;q=0.5"},
            trust_env=False,
        )

    async def aclose(self) -> None:
        await self.client.aclose()

    async def fetch(
        self, url: str, *, max_bytes: int, allow_hop: Callable[[str], Awaitable[str | None]] | None = None
    ) -> Fetched:
        """Fetch ``url`` following redirects. ``allow_hop(url)`` may veto a redirect target
        (returning the reason), e.g. one that leaves the site or robots.txt disallows."""
        for _hop in range(MAX_REDIRECTS + 1):
            target = httpx.URL(url)
            if target.scheme not in ("http", "https") or not target.host:
                raise FetchError(f"not an http(s) URL: {url[:200]}")
            addresses = await self._resolve(target)
            response = await self._get(target, addresses, max_bytes)
            if response.status in REDIRECT_CODES and response.location:
                next_url = urljoin(url, response.location)
                reason = await allow_hop(next_url) if allow_hop else None
                if reason:
                    raise FetchError(f"redirected to {next_url[:200]}, {reason}")
                url = next_url
                continue
            return Fetched(url, response.status, response.content_type, response.charset, response.body)
        raise FetchError(f"more than {MAX_REDIRECTS} redirects")

    async def _resolve(self, url: httpx.URL) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
        host = url.host
        port = url.port or (443 if url.scheme == "https" else 80)
        try:
            addresses = [ipaddress.ip_address(host.strip("[]"))]
        except ValueError:
            try:
                infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
            except (OSError, UnicodeError) as exc:
                raise FetchError(f"the host {host[:100]!r} could not be resolved ({exc})") from None
            addresses = list(dict.fromkeys(ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos))
        if not addresses:
            raise FetchError(f"the host {host[:100]!r} has no addresses")
        if not self.allow_private:
            for address in addresses:
                if not is_public_address(address):
                    raise FetchError(
                        f"the host {host[:100]!r} resolves to {address}, a private, loopback, link-local or reserved "
                        "address; knowledge sources must be public websites (an operator can allow private ones "
                        "with CALLABLE_ALLOW_PRIVATE_URLS=true)"
                    )
        return addresses

    async def _get(
        self, url: httpx.URL, addresses: list[ipaddress.IPv4Address | ipaddress.IPv6Address], max_bytes: int
    ) -> _Response:
        last_error: Exception | None = None
        for address in addresses:  # the first reachable checked address answers
            pinned = pin_to_address(url, address)
            try:
                request = self.client.build_request(
                    "GET", pinned.url, headers=pinned.headers, extensions=pinned.extensions
                )
                response = await self.client.send(request, stream=True)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                last_error = exc
                continue
            except httpx.TimeoutException:
                raise FetchError(f"{url.host} did not answer in time") from None
            except httpx.HTTPError as exc:
                raise FetchError(f"request to {url.host} failed: {type(exc).__name__}: {exc}") from None
            try:
                return await _read(response, max_bytes)
            finally:
                await response.aclose()
        raise FetchError(f"could not connect to {url.host}: {type(last_error).__name__}: {last_error}")


@dataclass(frozen=True)
class _Response:
    status: int
    location: str | None  # of a redirect
    content_type: str
    charset: str | None
    body: bytes


async def _read(response: httpx.Response, max_bytes: int) -> _Response:
    content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
    location = response.headers.get("location") if response.status_code in REDIRECT_CODES else None
    if response.status_code != 200:
        return _Response(response.status_code, location, content_type, None, b"")
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise PageTooLarge(f"{int(declared):,} bytes, over the {max_bytes:,}-byte limit")
    body = bytearray()
    try:
        async for piece in response.aiter_bytes():
            body += piece
            if len(body) > max_bytes:
                raise PageTooLarge(f"over the {max_bytes:,}-byte limit")
    except httpx.TimeoutException:
        raise FetchError("the server stopped sending in time") from None
    except httpx.HTTPError as exc:
        raise FetchError(f"reading the response failed: {type(exc).__name__}") from None
    return _Response(200, None, content_type, response.charset_encoding, bytes(body))


# --------------------------------------------------------------------------- robots.txt


class Robots:
    """robots.txt rules per origin, fetched once each."""

    def __init__(self, fetcher: Fetcher) -> None:
        self.fetcher = fetcher
        # An origin's parsed rules, or True (allow all), or the reason nothing is allowed.
        self._rules: dict[str, RobotFileParser | Literal[True] | str] = {}

    async def rules(self, url: str) -> RobotFileParser | Literal[True] | str:
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        if origin not in self._rules:
            self._rules[origin] = await self._load(origin)
        return self._rules[origin]

    async def _load(self, origin: str) -> RobotFileParser | Literal[True] | str:
        try:
            fetched = await self.fetcher.fetch(f"{origin}/robots.txt", max_bytes=MAX_ROBOTS_BYTES)
        except PageTooLarge:
            return True  # RFC 9309 lets crawlers ignore what's past 500 KiB; too big to trust is allow-all
        except FetchError as exc:
            return f"{exc} (fetching robots.txt)"  # unreachable: assume complete disallow
        if 400 <= fetched.status < 500:
            return True
        if fetched.status != 200:
            return f"robots.txt answered HTTP {fetched.status}, which means the site may not be crawled now"
        parser = RobotFileParser()
        parser.parse(fetched.body.decode("utf-8", errors="replace").splitlines())
        return parser

    async def refusal(self, url: str) -> str | None:
        """Why ``url`` may not be fetched, or None when it may."""
        rules = await self.rules(url)
        if rules is True:
            return None
        if isinstance(rules, str):
            return rules
        return None if rules.can_fetch(USER_AGENT_TOKEN, url) else "disallowed by robots.txt"

    async def delay(self, url: str) -> float:
        rules = await self.rules(url)
        if not isinstance(rules, RobotFileParser):
            return 0.0
        delay = rules.crawl_delay(USER_AGENT_TOKEN)
        return min(float(delay), MAX_CRAWL_DELAY_SECONDS) if delay else 0.0


# --------------------------------------------------------------------------- the loader


def check(draft: SourceDraft) -> None:
    url = check_url(draft.location)
    host = urlsplit(url).hostname or ""
    if draft.settings.allow_private_urls:
        return
    try:
        literal = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        literal = None
    if (literal is not None and not is_public_address(literal)) or host == "localhost" or host.endswith(".localhost"):
        raise InvalidInput(
            f"location: {host} is a private, loopback or link-local address; knowledge sources must be public "
            "websites (an operator can allow private ones with CALLABLE_ALLOW_PRIVATE_URLS=true)"
        )


class Crawl:
    """One source's fetch: yields documents, notes what it skipped."""

    def __init__(self, request: LoadRequest, options: UrlOptions) -> None:
        self.request = request
        self.options = options
        self.start = check_url(request.location)
        self.site = site_of(self.start)
        self.deadline = time.monotonic() + options.timeout_seconds
        self.total_bytes = 0
        self.skipped: list[tuple[str, str]] = []  # (url, reason)
        self.fetcher = Fetcher(
            allow_private=request.settings.allow_private_urls, request_timeout=options.request_timeout_seconds
        )
        self.robots = Robots(self.fetcher)

    def skip(self, url: str, reason: str) -> None:
        self.skipped.append((url, reason))
        self.request.note(f"skipped {url[:300]}: {reason}")

    async def hop_reason(self, url: str) -> str | None:
        """Why a redirect to ``url`` isn't followed, if it isn't."""
        if self.options.mode != "page" and site_of(url) != self.site:
            return "outside the site"
        refusal = await self.robots.refusal(url)
        return f"which may not be fetched: {refusal}" if refusal else None

    async def run(self) -> AsyncIterator[Document]:
        try:
            if self.options.mode == "sitemap":
                urls = await self.sitemap_urls()
                pages = self.pages(deque((url, 0) for url in urls), follow_links=False)
            else:
                pages = self.pages(deque([(self.start, 0)]), follow_links=self.options.mode == "crawl")
            indexed = 0
            async for document in pages:
                indexed += 1
                yield document
            if indexed == 0:
                reasons = "; ".join(f"{url[:200]}: {reason}" for url, reason in self.skipped[:5]) or "nothing to index"
                raise LoadError(f"no page could be indexed: {reasons}")
        finally:
            await self.fetcher.aclose()

    async def pages(self, queue: deque[tuple[str, int]], *, follow_links: bool) -> AsyncIterator[Document]:
        seen = {normalise_url(url) for url, _ in queue}
        fetched_pages: set[str] = set()  # final URLs, so a redirect and a link to one page count once
        indexed = 0
        attempts = 0
        while queue and indexed < self.options.max_pages:
            if time.monotonic() > self.deadline:
                self.request.note(
                    f"stopped after {self.options.timeout_seconds:.0f}s (time limit); {len(queue)} pages left"
                )
                break
            if self.total_bytes >= self.options.max_total_bytes:
                self.request.note(
                    f"stopped at {self.options.max_total_bytes:,} bytes (size limit); {len(queue)} pages left"
                )
                break
            if attempts >= 3 * self.options.max_pages:
                self.request.note(f"stopped after {attempts} requests; {len(queue)} pages left")
                break
            url, depth = queue.popleft()
            refusal = await self.robots.refusal(url)
            if refusal:
                self.skip(url, refusal)
                continue
            attempts += 1
            if attempts > 1:
                await asyncio.sleep(await self.robots.delay(url))
            fetched = await self.fetch_page(url)
            if fetched is None:
                continue
            final = normalise_url(fetched.url)
            if final in fetched_pages:
                self.skip(url, f"same page as {fetched.url[:300]}")
                continue
            fetched_pages.add(final)
            seen.add(final)
            document, links, skipped = await asyncio.to_thread(self.extract, fetched)  # parsing is CPU work
            if skipped:
                self.skip(fetched.url, skipped)
            if follow_links and depth < self.options.max_depth:
                for link in links:
                    key = normalise_url(link)
                    if key not in seen and site_of(link) == self.site and not _is_asset(link):
                        seen.add(key)
                        queue.append((link, depth + 1))
            if document is not None:
                indexed += 1
                yield document

    async def fetch_page(self, url: str) -> Fetched | None:
        remaining = self.deadline - time.monotonic()
        limit = min(self.options.max_page_bytes, self.options.max_total_bytes - self.total_bytes)
        try:
            async with asyncio.timeout(max(remaining, 0.001)):
                fetched = await self.fetcher.fetch(url, max_bytes=limit, allow_hop=self.hop_reason)
        except PageTooLarge as exc:
            self.skip(url, f"page too large ({exc})")
            return None
        except FetchError as exc:
            self.skip(url, str(exc))
            return None
        except TimeoutError:
            self.skip(url, "time limit reached")
            return None
        if fetched.status != 200:
            self.skip(url, f"HTTP {fetched.status}")
            return None
        self.total_bytes += len(fetched.body)
        return fetched

    @staticmethod
    def extract(fetched: Fetched) -> tuple[Document | None, list[str], str | None]:
        """The page's document (or why there is none) and its links. Pure: runs in a thread."""
        kind = fetched.content_type
        meta = {"url": fetched.url, "bytes": len(fetched.body)}
        if kind in HTML_TYPES or (not kind and fetched.body.lstrip()[:1] == b"<"):
            page = html_content.extract(fetched.body, base_url=fetched.url, encoding=fetched.charset)
            links = [] if page.nofollow else page.links
            if page.noindex:
                return None, links, "the page asks not to be indexed (meta robots noindex)"
            if not page.text.strip():
                return None, links, "no text on the page"
            title = page.title or _title_from_url(fetched.url)
            return Document(text=page.text, metadata={"title": title, **meta}), links, None
        if kind in TEXT_TYPES:
            text = fetched.body.decode(fetched.charset or "utf-8", errors="replace")
            return Document(text=text, metadata={"title": _title_from_url(fetched.url), **meta}), [], None
        return None, [], f"not an HTML page ({kind or 'no content type'})"

    async def sitemap_urls(self) -> list[str]:
        """Page URLs listed by the sitemap (following a sitemap index), on the site only."""
        pending = [self.start]
        visited: set[str] = set()
        pages: dict[str, None] = {}
        while pending and len(visited) < MAX_SITEMAPS:
            sitemap_url = pending.pop(0)
            if sitemap_url in visited:
                continue
            visited.add(sitemap_url)
            try:
                fetched = await self.fetcher.fetch(sitemap_url, max_bytes=MAX_SITEMAP_BYTES, allow_hop=self.hop_reason)
            except FetchError as exc:
                if sitemap_url == self.start:
                    raise LoadError(f"could not fetch the sitemap: {exc}") from None
                self.skip(sitemap_url, str(exc))
                continue
            if fetched.status != 200:
                if sitemap_url == self.start:
                    raise LoadError(f"could not fetch the sitemap: HTTP {fetched.status}")
                self.skip(sitemap_url, f"HTTP {fetched.status}")
                continue
            try:
                root = await asyncio.to_thread(_parse_sitemap, fetched.body)
            except (ElementTree.ParseError, OSError, EOFError, zlib.error) as exc:
                if sitemap_url == self.start:
                    raise LoadError(f"the sitemap is not valid XML: {exc}") from None
                self.skip(sitemap_url, "not valid XML")
                continue
            is_index = root.tag.rsplit("}", 1)[-1] == "sitemapindex"
            for element in root.iter():
                text = (element.text or "").strip()
                if element.tag.rsplit("}", 1)[-1] != "loc" or not text:
                    continue
                loc = urljoin(fetched.url, text)
                if site_of(loc) != self.site:
                    self.skip(loc, "outside the site")
                elif is_index:
                    pending.append(loc)
                else:
                    pages.setdefault(loc, None)
        return list(pages)


def _parse_sitemap(body: bytes) -> ElementTree.Element:
    return ElementTree.fromstring(_maybe_gunzip(body))


def _maybe_gunzip(body: bytes) -> bytes:
    if body[:2] != b"\x1f\x8b":
        return body
    decompressor = zlib.decompressobj(16 + zlib.MAX_WBITS)
    data = decompressor.decompress(body, MAX_SITEMAP_BYTES)
    if decompressor.unconsumed_tail:
        raise OSError("the sitemap is too large once decompressed")
    return data


def _title_from_url(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.hostname}{parts.path if parts.path not in ('', '/') else ''}"


async def load(request: LoadRequest) -> AsyncIterator[Document]:
    options = UrlOptions(**request.options)
    crawl = Crawl(request, options)
    if options.mode == "page":
        # One page: any reason it can't be indexed is the source's failure reason.
        try:
            async for document in crawl.run():
                yield document
        except LoadError:
            reason = crawl.skipped[0][1] if crawl.skipped else "nothing to index"
            raise LoadError(f"could not index {request.location[:300]}: {reason}") from None
        return
    async for document in crawl.run():
        yield document


@hookimpl
def register_knowledge_loaders() -> list[LoaderType]:
    return [
        LoaderType(
            name="url",
            description="A web page, a crawl of a website from a start URL, or the pages of a sitemap",
            options_schema=UrlOptions,
            load=load,
            check=check,
            refreshable=True,
        )
    ]


__all__ = ["Fetcher", "Robots", "UrlOptions", "check_url", "normalise_url", "site_of"]
