"""Knowledge-base fixtures: a workspace with a knowledge base, real files built here, and a
real website served on loopback.

The website (:class:`TestSite`) is an HTTP server on 127.0.0.1 in a thread. Its pages can
be changed while a test runs, and it records every path requested, so tests can assert what
a crawl fetched and what it never touched.
"""

from __future__ import annotations

import io
import shutil
import threading
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from callable_agents.core.bootstrap import close_runtime, open_runtime
from callable_agents.core.config import Settings, async_database_url
from callable_agents.core.db import migrate_sync
from callable_agents.core.knowledge import (
    IngestProgress,
    KnowledgeService,
    Passage,
    add_source,
    create_knowledge_base,
    ingest_source,
)
from callable_agents.core.models import Chunk, Source
from callable_agents.core.runtime import Runtime
from callable_agents.core.store.workspaces import create_workspace
from tests.conftest import make_settings

# --------------------------------------------------------------------------- the website

NAV = """<header class="site-header"><a href="/">Harbour Bikes</a>
<nav><a href="/about">About</a> <a href="/services">Services</a> <a href="/private/staff">Staff</a>
<a href="/old-contact">Contact</a> <a href="/missing">Gallery</a> <a href="/big">Catalogue</a>
<a href="https://elsewhere.example/partner">Partner</a> <a href="/logo.png">Logo</a></nav></header>"""
FOOTER = """<footer>Copyright 2024 Harbour Bikes Ltd. All rights reserved. <a href="/privacy">Privacy</a></footer>"""


def page(title: str, body: str) -> str:
    return (
        f"<!doctype html><html><head><title>{title}</title></head><body>{NAV}"
        f"<div class='cookie-banner'>We use cookies to improve your experience.</div>"
        f"<main>{body}</main>{FOOTER}</body></html>"
    )


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    content_type: str = "text/html; charset=utf-8"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before answering


def html(title: str, body: str) -> Response:
    return Response(body=page(title, body).encode())


class TestSite:
    """A small business website on 127.0.0.1: linked pages, a sitemap, robots.txt
    disallowing /private/, a redirect, a 404 and an oversized page."""

    __test__ = False  # not a test class, despite the name

    OVERSIZED_BYTES = 300_000

    def __init__(self) -> None:
        self.routes: dict[str, Response] = {}
        self.requests: list[str] = []
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._default_routes()

    def url(self, path: str) -> str:
        return self.base_url + path

    def _default_routes(self) -> None:
        self.routes.update(
            {
                "/robots.txt": Response(body=b"User-agent: *\nDisallow: /private/\n", content_type="text/plain"),
                "/": html(
                    "Harbour Bikes | Home",
                    "<h1>Harbour Bikes</h1><p>Bicycle sales, repairs and rentals by the harbour "
                    "since 2009. Visit our <a href='/services'>services</a> or read <a href='/about'>about us</a>.</p>",
                ),
                "/about": html(
                    "About us | Harbour Bikes",
                    "<h1>About us</h1><p>Harbour Bikes is a family-run shop founded by "
                    "Maria Lopez. Meet <a href='/team'>our team</a>.</p>",
                ),
                "/team": html(
                    "Our team | Harbour Bikes",
                    "<h1>Our team</h1><p>Our mechanics are certified by the Bicycle "
                    "Trades Association. Read our <a href='/team/history'>history</a>.</p>",
                ),
                "/team/history": html(
                    "History | Harbour Bikes", "<h1>History</h1><p>The shop began in a fishing shed.</p>"
                ),
                "/services": html(
                    "Services | Harbour Bikes",
                    "<h1>Services</h1><h2>Repairs</h2><p>A standard tune-up costs "
                    "$65 and takes two working days.</p><h2>Rentals</h2><p>City bikes rent for $25 a day; "
                    "e-bikes for $45 a day.</p>",
                ),
                "/private/staff": html("Staff only", "<p>The alarm code is 4321.</p>"),
                "/old-contact": Response(status=301, headers={"Location": "/contact"}),
                "/contact": html(
                    "Contact | Harbour Bikes", "<h1>Contact</h1><p>Call us on 555-0100 or visit 12 Quay Street.</p>"
                ),
                "/privacy": html(
                    "Privacy | Harbour Bikes", "<h1>Privacy</h1><p>We keep your details only to process orders.</p>"
                ),
                "/missing": Response(status=404, body=b"not found", content_type="text/plain"),
                "/big": html("Catalogue", "<p>" + "Every bicycle part you could want. " * 9000 + "</p>"),
                "/logo.png": Response(body=b"\x89PNG\r\n\x1a\n", content_type="image/png"),
            }
        )
        self.set_sitemap(["/about", "/services", "/old-contact", "/private/staff", "https://elsewhere.example/x"])

    def set_sitemap(self, paths: Sequence[str]) -> None:
        locs = "".join(f"<url><loc>{p if p.startswith('http') else self.url(p)}</loc></url>" for p in paths)
        body = f'<?xml version="1.0" encoding="UTF-8"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{locs}</urlset>'
        self.routes["/sitemap.xml"] = Response(body=body.encode(), content_type="application/xml")

    def requested(self, path: str) -> int:
        with self._lock:
            return self.requests.count(path)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        site = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802 - the http.server API
                path = self.path.split("?", 1)[0]
                with site._lock:
                    site.requests.append(path)
                    response = site.routes.get(path, Response(status=404, body=b"not found", content_type="text/plain"))
                if response.delay:
                    time.sleep(response.delay)
                try:
                    self.send_response(response.status)
                    self.send_header("Content-Type", response.content_type)
                    self.send_header("Content-Length", str(len(response.body)))
                    for name, value in response.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(response.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the crawler gave up on this page (a limit): expected

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler

    def __enter__(self) -> TestSite:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def site() -> Iterator[TestSite]:
    with TestSite() as running_site:
        yield running_site


# --------------------------------------------------------------------------- a knowledge base


@dataclass
class KnowledgeEnv:
    """A workspace with one knowledge base, and helpers that go through the public API."""

    runtime: Runtime
    workspace_id: str
    knowledge_base_id: str
    notes: list[str] = field(default_factory=list)
    events: list[IngestProgress] = field(default_factory=list)

    @property
    def service(self) -> KnowledgeService:
        return KnowledgeService.of(self.runtime)

    def record(self, event: IngestProgress) -> None:
        self.events.append(event)
        if event.stage == "note":
            self.notes.append(event.message)

    async def add(self, kind: str, **fields: Any) -> Source:
        async with self.runtime.db.session() as session:
            return await add_source(
                session, self.workspace_id, self.knowledge_base_id, runtime=self.runtime, kind=kind, **fields
            )

    async def ingest(self, source_id: str) -> Source:
        return await ingest_source(self.runtime, self.workspace_id, source_id, progress=self.record)

    async def add_and_ingest(self, kind: str, **fields: Any) -> Source:
        return await self.ingest((await self.add(kind, **fields)).id)

    async def search(self, query: str, **options: Any) -> list[Passage]:
        return await self.service.search(self.workspace_id, [self.knowledge_base_id], query, **options)

    async def chunks(self, source_id: str | None = None) -> list[Chunk]:
        async with self.runtime.db.session() as session:
            query = select(Chunk).where(
                Chunk.workspace_id == self.workspace_id, Chunk.knowledge_base_id == self.knowledge_base_id
            )
            if source_id is not None:
                query = query.where(Chunk.source_id == source_id)
            return list((await session.scalars(query.order_by(Chunk.id))).all())

    def embedded(self) -> int:
        """Texts the knowledge base's model has embedded so far in this process."""
        return self.service.models.texts_embedded


async def make_env(
    runtime: Runtime, workspace_name: str = "Harbour Bikes", kb_name: str = "main", **kb: Any
) -> KnowledgeEnv:
    async with runtime.db.session() as session:
        workspace = await create_workspace(session, runtime.vault, workspace_name)
        knowledge_base = await create_knowledge_base(session, workspace.id, kb_name, runtime=runtime, **kb)
    return KnowledgeEnv(runtime, workspace.id, knowledge_base.id)


@pytest.fixture(scope="session")
def migrated_sqlite_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One SQLite file migrated once per session; tests get copies (Alembic per test is slow)."""
    path = tmp_path_factory.mktemp("template") / "callable.db"
    migrate_sync(async_database_url(f"sqlite:///{path}"))
    return path


@pytest.fixture
def kb_settings(tmp_path: Path, migrated_sqlite_file: Path) -> Settings:
    """Like ``sqlite_settings``, from a copy of the migrated template."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    shutil.copyfile(migrated_sqlite_file, data_dir / "callable.db")
    return make_settings(data_dir)


@pytest.fixture
async def kb_runtime(kb_settings: Settings) -> AsyncIterator[Runtime]:
    runtime = await open_runtime(kb_settings)
    try:
        yield runtime
    finally:
        await close_runtime(runtime)


@pytest.fixture
async def env(kb_runtime: Runtime) -> AsyncIterator[KnowledgeEnv]:
    yield await make_env(kb_runtime)


# --------------------------------------------------------------------------- files


PDF_PAGES = (
    ("Warranty", "Every new bicycle comes with a two-year warranty on the frame and one year on components."),
    ("Returns", "Unused accessories can be returned within 30 days with the receipt for a full refund."),
    ("Servicing", "Free first service within six weeks of purchase: gears and brakes adjusted."),
)


def make_pdf(
    pages: Sequence[tuple[str, str]] = PDF_PAGES, *, title: str = "Customer Handbook", password: str | None = None
) -> bytes:
    """A real multi-page PDF (reportlab), one heading and paragraph per page."""
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    buffer = io.BytesIO()
    pdf = canvas.Canvas(buffer, pagesize=A4, encrypt=password)
    pdf.setTitle(title)
    for heading, text in pages:
        pdf.setFont("Helvetica-Bold", 16)
        pdf.drawString(72, 760, heading)
        pdf.setFont("Helvetica", 11)
        y = 730
        line = ""
        for word in text.split():
            if len(line) + len(word) > 80:
                pdf.drawString(72, y, line)
                y -= 16
                line = ""
            line = f"{line} {word}".strip()
        pdf.drawString(72, y, line)
        pdf.showPage()
    pdf.save()
    return buffer.getvalue()


def make_docx() -> bytes:
    """A real DOCX (python-docx): title, headings, paragraphs, a list and a table."""
    import docx

    document = docx.Document()
    document.core_properties.title = "Rental Terms"
    document.add_heading("Rental Terms", level=0)
    document.add_heading("Deposits", level=1)
    document.add_paragraph("A refundable deposit of $100 is taken for every rental bike.")
    document.add_heading("Late returns", level=2)
    document.add_paragraph("Bikes returned late are charged $10 per hour.")
    document.add_paragraph("Helmets are included", style="List Bullet")
    document.add_paragraph("Locks are included", style="List Bullet")
    table = document.add_table(rows=2, cols=2)
    table.cell(0, 0).text, table.cell(0, 1).text = "Bike", "Daily rate"
    table.cell(1, 0).text, table.cell(1, 1).text = "Tandem", "$60"
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


HTML_FILE = page(
    "Opening hours | Harbour Bikes",
    "<h1>Opening hours</h1><p>Monday to Friday 9am to 6pm.</p><p>Saturday 10am to 4pm; closed on Sundays.</p>",
).encode()

CSV_FILE = (
    b"Model,Type,Price,Frame sizes\n"
    b"Harbour Cruiser,City bike,$549,S M L\n"
    b"Quay Runner,Road bike,$1299,M L XL\n"
    b"Tide E-Bike,Electric,$2199,M L\n"
)
