"""The demo's pretend back office, served by this same server under ``/demo-api``.

The demo agent's tools call it so the demo shows tools working without any outside
service: order status as JSON (``lookup``), the menu as a PDF (``send_info``), the allergen
sheet as a page; plus a stand-in business website embedding the demo's widget. The
``lookup`` tool reaches it through ``${CALLABLE_BASE_URL}``, a loopback address, which the
tool only calls when ``CALLABLE_ALLOW_PRIVATE_URLS`` is on (``callable demo`` turns it on).
"""

from __future__ import annotations

import html
import re
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

import yaml
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from callable_agents.demo.pdf import simple_pdf
from callable_agents.demo.workspace import DEMO_WORKSPACE, WIDGET_TEST_PAGE, demo_file_text

MENU_SOURCE_TITLES = ("Menu - breads and pastries", "Menu - cakes, drinks and lunch")
ALLERGEN_SOURCE_TITLE = "Allergens and dietary options"


def _order_book(today: date) -> dict[str, dict[str, Any]]:
    """The pretend orders, dated relative to ``today`` so they always look current."""

    def at(days: int, hour: int, minute: int = 0) -> str:
        return datetime.combine(today + timedelta(days=days), time(hour, minute), tzinfo=timezone.utc).isoformat()

    return {
        "BB-1042": {
            "order_id": "BB-1042",
            "type": "custom cake",
            "status": "in_progress",
            "status_text": "Being decorated: the sponge is baked and the cake is in the decorating room.",
            "items": [{"name": "Round cake serving 20-25, chocolate fudge, 'Happy 40th Sam'", "quantity": 1}],
            "fulfilment": "collection",
            "ready_at": at(1, 10),
            "collect_from": "24 Orchard Lane (or the Mill Street loading bay)",
            "total": "£75.00",
            "paid": "£22.50 deposit; £52.50 due on collection",
        },
        "BB-1043": {
            "order_id": "BB-1043",
            "type": "delivery",
            "status": "out_for_delivery",
            "status_text": "Out for delivery: the driver will text about 30 minutes before arriving.",
            "items": [
                {"name": "Box of 6 mixed pastries", "quantity": 2},
                {"name": "Seeded rye sourdough", "quantity": 1},
            ],
            "fulfilment": "delivery",
            "delivery_window": {"from": at(0, 11), "to": at(0, 13)},
            "delivery_area": "Northbank (within 3 miles)",
            "total": "£32.70",
            "paid": "paid in full",
        },
        "BB-1044": {
            "order_id": "BB-1044",
            "type": "catering",
            "status": "confirmed",
            "status_text": "Confirmed: we will start preparing it the day before delivery.",
            "items": [{"name": "Working lunch", "quantity": 24}, {"name": "Coffee flask (10 cups)", "quantity": 3}],
            "fulfilment": "delivery",
            "delivery_window": {"from": at(3, 11, 30), "to": at(3, 12, 30)},
            "total": "£330.00",
            "paid": "invoice, due 14 days after delivery",
            "free_cancellation_until": at(1, 11, 30),
        },
        "BB-1045": {
            "order_id": "BB-1045",
            "type": "counter pre-order",
            "status": "cancelled",
            "status_text": "Cancelled by the customer; refunded to the original card.",
            "items": [{"name": "Classic white sourdough loaf", "quantity": 2}],
            "fulfilment": "collection",
            "total": "£9.60",
            "refund": {"amount": "£9.60", "issued_at": at(-1, 9, 15), "method": "original card, within 5 working days"},
        },
    }


_ORDER_ID = re.compile(r"^([A-Za-z]{2})-?(\d{3,6})$")


async def order_status(request: Request) -> Response:
    """``GET /demo-api/orders/{order_id}``: an order as JSON, or 404."""
    raw = str(request.path_params["order_id"]).strip()
    match = _ORDER_ID.match(raw)
    order_id = f"{match.group(1).upper()}-{match.group(2)}" if match else raw
    order = _order_book(date.today()).get(order_id)
    if order is None:
        return JSONResponse(
            {"error": "order_not_found", "message": f"No order with number {order_id[:40]!r}. Order numbers look like BB-1042."},
            status_code=404,
        )
    return JSONResponse(order)


def _demo_sources() -> dict[str, str]:
    """The demo file's text sources by title (the menu PDF and allergen page are built from them)."""
    document = yaml.safe_load(demo_file_text())
    texts: dict[str, str] = {}
    for knowledge_base in document.get("knowledge_bases", []):
        for source in knowledge_base.get("sources", []):
            if source.get("kind") == "text":
                texts[source["title"]] = source["text"]
    return texts


async def menu_pdf(request: Request) -> Response:
    """``GET /demo-api/menu.pdf``: the menu from the knowledge base, as a PDF the send_info tool links."""
    sources = _demo_sources()
    lines: list[tuple[str, str]] = [("title", "Bella's Bakery & Café - Menu"), ("text", "")]
    for title in MENU_SOURCE_TITLES:
        for line in sources.get(title, "").splitlines():
            if line.startswith("#"):
                lines.extend([("text", ""), ("heading", line.lstrip("# ").strip())])
            else:
                lines.append(("text", line.strip()))
    lines.extend([("text", ""), ("text", "24 Orchard Lane, Riverton RV2 4BL  -  +44 20 7946 0321")])
    return Response(
        simple_pdf(lines),
        media_type="application/pdf",
        headers={"Content-Disposition": 'inline; filename="bellas-menu.pdf"'},
    )


async def allergen_sheet(request: Request) -> Response:
    """``GET /demo-api/allergens``: the allergen sheet as a small HTML page."""
    text = _demo_sources().get(ALLERGEN_SOURCE_TITLE, "")
    body: list[str] = []
    for block in re.split(r"\n\s*\n", text.strip()):
        heading, *rest = block.strip().splitlines()
        if heading.startswith("#"):
            body.append(f"<h2>{html.escape(heading.lstrip('# '))}</h2>")
            block = " ".join(rest)
        if block.strip():
            body.append(f"<p>{html.escape(' '.join(block.split()))}</p>")
    page = (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        "<meta name=viewport content='width=device-width, initial-scale=1'>"
        "<title>Allergen sheet - Bella's Bakery &amp; Café</title></head>"
        "<body style='font-family:system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem'>"
        "<h1>Allergen sheet</h1>" + "".join(body) + "</body></html>"
    )
    return HTMLResponse(page)


def demo_routes() -> list[BaseRoute]:
    """The demo back office, for the server to mount at the root (paths start with ``/demo-api``)."""
    return [
        Route("/demo-api/orders/{order_id}", order_status, methods=["GET"]),
        Route("/demo-api/menu.pdf", menu_pdf, methods=["GET"]),
        Route("/demo-api/allergens", allergen_sheet, methods=["GET"]),
        Route(WIDGET_TEST_PAGE, widget_test_page, methods=["GET"]),
    ]


WIDGET_PAGE_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Bella's Bakery &amp; Café (widget demo)</title>
<style>body{{font-family:system-ui,sans-serif;max-width:40rem;margin:3rem auto;padding:0 1rem;color:#222}}</style>
</head><body>
<h1>Bella's Bakery &amp; Café</h1>
<p>This page stands in for the business's own website. The chat button in the corner is the
widget, added by one script tag:</p>
<pre>&lt;script src="{base}/widget.js" data-channel="{channel_id}" async&gt;&lt;/script&gt;</pre>
<p>Try: <em>"Do you deliver to Riverside?"</em> or <em>"I want to talk to a person"</em>.
With a model connected the agent also looks up orders (<em>"Where is my order BB-1042?"</em>)
and sends the menu (<em>"Can you send me the menu?"</em>).</p>
<script src="/widget.js" data-channel="{channel_id}" async></script>
</body></html>
"""


async def widget_test_page(request: Request) -> Response:
    """A stand-in business website embedding the demo workspace's widget."""
    from sqlalchemy import select

    from callable_agents.core.models import Channel, Workspace
    from callable_agents.core.runtime import runtime_of

    async with runtime_of(request).db.session() as session:
        channel_id = await session.scalar(
            select(Channel.id)
            .join(Workspace, Workspace.id == Channel.workspace_id)
            .where(Workspace.slug == DEMO_WORKSPACE, Channel.kind == "widget")
        )
    if channel_id is None:
        return PlainTextResponse("the demo has no widget channel: run `callable demo`", status_code=404)
    base = str(request.base_url).rstrip("/")
    return HTMLResponse(WIDGET_PAGE_HTML.format(base=html.escape(base), channel_id=html.escape(channel_id)))
