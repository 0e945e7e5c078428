"""Security headers: nosniff everywhere, no framing unless a route allows it."""

from __future__ import annotations

from pathlib import Path

from starlette.applications import Starlette
from starlette.responses import HTMLResponse, PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from callable_agents.security_headers import SecurityHeaders
from callable_agents.server import create_app
from tests.conftest import make_settings


def test_every_server_response_carries_nosniff_and_refuses_frames(tmp_path: Path) -> None:
    with TestClient(create_app(make_settings(tmp_path, auto_migrate=True))) as client:
        for path, status in [("/", 200), ("/healthz", 200), ("/readyz", 200), ("/api/v1/workspace", 401), ("/nowhere", 404)]:
            response = client.get(path)
            assert response.status_code == status, path
            assert response.headers["x-content-type-options"] == "nosniff", path
            assert response.headers["x-frame-options"] == "DENY", path
            assert "frame-ancestors 'none'" in response.headers["content-security-policy"], path
            assert response.headers["referrer-policy"] == "strict-origin-when-cross-origin", path


def _app(headers: dict[str, str]) -> Starlette:
    async def page(request: object) -> HTMLResponse:
        return HTMLResponse("<p>hi</p>", headers=headers)

    async def text(request: object) -> PlainTextResponse:
        return PlainTextResponse("x", headers=headers)

    app = Starlette(routes=[Route("/page", page), Route("/text", text)])
    app.add_middleware(SecurityHeaders)
    return app


def test_a_route_that_names_its_framers_keeps_them() -> None:
    policy = "default-src 'none'; frame-ancestors https://shop.example"
    response = TestClient(_app({"Content-Security-Policy": policy})).get("/page")
    assert response.headers["content-security-policy"] == policy
    assert "x-frame-options" not in response.headers
    assert response.headers["x-content-type-options"] == "nosniff"


def test_a_policy_without_frame_ancestors_gets_the_refusal_appended() -> None:
    response = TestClient(_app({"Content-Security-Policy": "default-src 'self';"})).get("/text")
    assert response.headers["content-security-policy"] == "default-src 'self'; frame-ancestors 'none'"
    assert response.headers["x-frame-options"] == "DENY"


def test_headers_a_route_set_are_not_overwritten() -> None:
    response = TestClient(_app({"Referrer-Policy": "no-referrer", "X-Frame-Options": "SAMEORIGIN"})).get("/text")
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["x-frame-options"] == "SAMEORIGIN"
    assert response.headers.get_list("x-content-type-options") == ["nosniff"]
