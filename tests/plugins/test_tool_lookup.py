"""The built-in ``lookup`` tool against a real loopback HTTP API, with a real runtime and vault.

The API is a threaded ``http.server`` on 127.0.0.1 that records every request (method, raw
path, headers, body) and answers by path: ``/echo`` returns what it received, ``/slow``
sleeps, ``/big`` is large, ``/status/<n>`` answers with that status, and so on.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import ValidationError

from callable_agents.core.bootstrap import close_runtime, open_runtime
from callable_agents.core.db import migrate_sync
from callable_agents.core.store.integrations import connect_integration
from callable_agents.core.runtime import Runtime
from callable_agents.core.contracts.tools import ToolContext
from callable_agents.core.store.workspaces import create_workspace
from callable_agents.core.http_safety import (
    HostNotFound,
    UnsafeAddress,
    is_public_address,
    resolve_checked,
)
from callable_agents.plugins.lookup.json_arguments import SchemaError, check_object_schema, validate_arguments
from callable_agents.plugins.lookup import LookupConfig
from tests.conftest import make_settings

API_KEY = "sk-orders-api-key-0123456789-SECRETVALUE"


# -- the loopback API ----------------------------------------------------------------------------


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class FakeApi:
    """A real HTTP server on a free loopback port, recording requests."""

    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                recorded = RecordedRequest(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                api.requests.append(recorded)
                try:
                    api.answer(self, recorded)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout, size cap): expected in some tests

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeApi:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    @staticmethod
    def _send(handler: BaseHTTPRequestHandler, status: int, body: bytes, content_type: str, **headers: str) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            handler.send_header(name.replace("_", "-"), value)
        handler.end_headers()
        handler.wfile.write(body)

    def answer(self, handler: BaseHTTPRequestHandler, request: RecordedRequest) -> None:
        path = request.path.split("?", 1)[0]
        if path == "/slow":
            time.sleep(3)
            self._send(handler, 200, b'{"late": true}', "application/json")
        elif path == "/big":
            self._send(handler, 200, b"x" * 100_000, "text/plain; charset=utf-8")
        elif path == "/image":
            self._send(handler, 200, b"\x89PNG\r\n\x1a\n" + b"\0" * 100, "image/png")
        elif path == "/text":
            self._send(handler, 200, "Open 9–17, closed Sundays".encode(), "text/plain; charset=utf-8")
        elif path == "/latin":
            self._send(handler, 200, "café".encode("latin-1"), "text/plain; charset=iso-8859-1")
        elif path == "/bogus-charset":
            self._send(handler, 200, b"ok", "text/plain; charset=no-such-charset")
        elif path == "/redirect":
            self._send(handler, 302, b"", "text/plain", Location=f"{self.base_url}/echo?redirected=1")
        elif path == "/cookie":
            self._send(handler, 200, b"{}", "application/json", Set_Cookie="session=abc123; Path=/")
        elif path.startswith("/status/"):
            status = int(path.rsplit("/", 1)[1])
            self._send(handler, status, json.dumps({"error": "no such order"}).encode(), "application/json")
        else:  # /echo and /orders/...: what was received, as JSON
            echoed = {
                "method": request.method,
                "path": request.path,
                "authorization": request.headers.get("authorization"),
                "body": request.body.decode() or None,
            }
            self._send(handler, 200, json.dumps(echoed, indent=4).encode(), "application/json")

    def paths(self) -> list[str]:
        return [request.path for request in self.requests]


@pytest.fixture
def api() -> Iterator[FakeApi]:
    with FakeApi() as server:
        yield server


# -- helpers ---------------------------------------------------------------------------------------


@pytest.fixture
async def workspace_id(sqlite_runtime: Runtime) -> str:
    async with sqlite_runtime.db.session() as session:
        workspace = await create_workspace(session, sqlite_runtime.vault, "Acme", "acme")
    return workspace.id


def build(runtime: Runtime, workspace_id: str, config: dict[str, Any], name: str = "order_status") -> BaseTool:
    """The tool as the agent gets it: the type from the plugin registry, config validated by its schema."""
    tool_type = runtime.plugins.tools.get("lookup")
    context = ToolContext(
        runtime=runtime,
        workspace_id=workspace_id,
        agent_id="agent-1",
        tool_name=name,
        config=tool_type.config_schema.model_validate(config),
        conversation_id="conversation-1",
        channel_kind="widget",
    )
    return tool_type.factory(context)


ORDER_PARAMETERS = {
    "type": "object",
    "properties": {
        "order_id": {"type": "string", "description": "The order number"},
        "include_items": {"type": "boolean"},
        "fields": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["order_id"],
}


def order_config(base_url: str, **overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "description": "Look up an order's status by its order number.",
        "url": f"{base_url}/orders/{{order_id}}?format=json",
        "parameters": ORDER_PARAMETERS,
    }
    config.update(overrides)
    return config


# -- registration and what the model sees ------------------------------------------------------------


async def test_registered_by_its_entry_point_and_shown_to_the_model(
    sqlite_runtime: Runtime, workspace_id: str, api: FakeApi
) -> None:
    assert sqlite_runtime.plugins.tools.owners["lookup"] == "lookup"
    tool = build(sqlite_runtime, workspace_id, order_config(api.base_url))
    assert tool.name == "order_status"
    assert tool.coroutine is not None  # type: ignore[attr-defined]
    function = convert_to_openai_tool(tool)["function"]
    assert function["name"] == "order_status"
    assert function["description"] == "Look up an order's status by its order number."
    assert function["parameters"]["properties"]["order_id"] == {"type": "string", "description": "The order number"}
    assert function["parameters"]["required"] == ["order_id"]


# -- requests ----------------------------------------------------------------------------------------


async def test_get_substitutes_encoded_path_values_and_puts_the_rest_in_the_query(
    sqlite_runtime: Runtime, workspace_id: str, api: FakeApi
) -> None:
    tool = build(sqlite_runtime, workspace_id, order_config(api.base_url))
    result = await tool.ainvoke({"order_id": "A/1 ?#é", "include_items": True, "fields": ["total", "eta"]})

    assert api.paths() == ["/orders/A%2F1%20%3F%23%C3%A9?format=json&include_items=true&fields=total&fields=eta"]
    assert api.requests[0].method == "GET"
    assert api.requests[0].body == b""
    assert api.requests[0].headers["host"] == f"127.0.0.1:{api.port}"
    assert result.startswith("HTTP 200 OK\n")
    body = json.loads(result.split("\n", 1)[1])
    assert body["path"] == api.paths()[0]
    assert "\n" not in result.split("\n", 1)[1]  # the API's indented JSON is re-encoded compactly


async def test_post_sends_json_body_and_listed_query_parameters(
    sqlite_runtime: Runtime, workspace_id: str, api: FakeApi
) -> None:
    config = {
        "description": "Book a table.",
        "method": "post",
        "url": f"{api.base_url}/echo",
        "parameters": {
            "type": "object",
            "properties": {
                "guests": {"type": "integer", "minimum": 1, "maximum": 12},
                "customer": {
                    "type": "object",
                    "properties": {"name": {"type": "string"}, "phone": {"type": "string"}},
                    "required": ["name"],
                },
                "dry_run": {"type": "boolean"},
                "note": {"type": "string"},
            },
            "required": ["guests", "customer"],
        },
        "query_parameters": ["dry_run"],
    }
    tool = build(sqlite_runtime, workspace_id, config, name="book_table")
    result = await tool.ainvoke({"guests": 4, "customer": {"name": "Ana", "phone": "+34 600"}, "dry_run": False, "note": None})

    [request] = api.requests
    assert request.method == "POST"
    assert request.path == "/echo?dry_run=false"
    assert request.headers["content-type"] == "application/json"
    # ``note: null`` for an optional argument counts as leaving it out.
    assert json.loads(request.body) == {"guests": 4, "customer": {"name": "Ana", "phone": "+34 600"}}
    assert result.startswith("HTTP 200 OK")


async def test_delete_puts_arguments_in_the_query_by_default(
    sqlite_runtime: Runtime, workspace_id: str, api: FakeApi
) -> None:
    config = {
        "description": "Cancel a booking.",
        "method": "DELETE",
        "url": f"{api.base_url}/echo/{{booking}}",
        "parameters": {
            "type": "object",
            "properties": {"booking": {"type": "integer"}, "reason": {"type": "string"}},
            "required": ["booking"],
        },
    }
    tool = build(sqlite_runtime, workspace_id, config, name="cancel")
    await tool.ainvoke({"booking": 42, "reason": "sick & tired"})
    assert api.requests[0].method == "DELETE"
    assert api.paths() == ["/echo/42?reason=sick+%26+tired"]
    assert api.requests[0].body == b""


async def test_null_for_a_nullable_query_parameter_is_left_out(
    sqlite_runtime: Runtime, workspace_id: str, api: FakeApi
) -> None:
    parameters = {
        "type": "object",
        "properties": {"q": {"type": "string"}, "page": {"type": ["integer", "null"]}},
        "required": ["q"],
    }
    tool = build(sqlite_runtime, workspace_id, {"description": "Search.", "url": f"{api.base_url}/echo", "parameters": parameters})
    await tool.ainvoke({"q": "red shoes", "page": None})
    await tool.ainvoke({"q": "red shoes", "page": 2})
    assert api.paths() == ["/echo?q=red+shoes", "/echo?q=red+shoes&page=2"]


async def test_localhost_name_keeps_its_host_header(sqlite_runtime: Runtime, workspace_id: str, api: FakeApi) -> None:
    """The request is pinned to the checked address, but the server still sees the name."""
    tool = build(sqlite_runtime, workspace_id, order_config(f"http://localhost:{api.port}"))
    result = await tool.ainvoke({"order_id": "7"})
    assert result.startswith("HTTP 200 OK")
    assert api.requests[0].headers["host"] == f"localhost:{api.port}"


# -- secrets -----------------------------------------------------------------------------------------


async def test_secret_header_is_resolved_from_the_vault_and_never_shown(
    sqlite_runtime: Runtime, workspace_id: str, api: FakeApi, caplog: pytest.LogCaptureFixture
) -> None:
    async with sqlite_runtime.db.session() as session:
        from callable_agents.core.models import Workspace

        workspace = await session.get(Workspace, workspace_id)
        assert workspace is not None
        await connect_integration(
            session, sqlite_runtime.vault, workspace, provider="openai", name="orders.api", public={},
            secrets={"api_key": API_KEY},
        )
    config = order_config(
        api.base_url,
        url=f"{api.base_url}/echo",
        headers={"Authorization": "Bearer {{secret:orders.api.api_key}}", "X-Shop": "acme"},
    )
    with caplog.at_level(logging.DEBUG):
        tool = build(sqlite_runtime, workspace_id, config)
        result = await tool.ainvoke({"order_id": "9"})

    [request] = api.requests
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    assert request.headers["x-shop"] == "acme"
    # The fake API echoes the Authorization header: the model gets it redacted.
    assert API_KEY not in result
    assert '"authorization": "Bearer [secret]"' in result
    assert API_KEY not in tool.description
    assert API_KEY not in json.dumps(convert_to_openai_tool(tool))
    assert API_KEY not in caplog.text


async def test_missing_secret_is_an_error_string_and_nothing_is_sent(
    sqlite_runtime: Runtime, workspace_id: str, api: FakeApi, caplog: pytest.LogCaptureFixture
) -> None:
    config = order_config(api.base_url, headers={"Authorization": "Bearer {{secret:nowhere.api_key}}"})
    tool = build(sqlite_runtime, workspace_id, config)
    with caplog.at_level(logging.WARNING):
        result = await tool.ainvoke({"order_id": "9"})
    assert result == "The API's credentials are not set up, so this cannot be looked up right now."
    assert api.requests == []
    assert "{{secret:nowhere.api_key}}" in caplog.text  # the operator learns which reference failed


# -- failures come back as sentences -----------------------------------------------------------------


async def test_timeout_is_an_error_string(sqlite_runtime: Runtime, workspace_id: str, api: FakeApi) -> None:
    tool = build(sqlite_runtime, workspace_id, order_config(api.base_url, url=f"{api.base_url}/slow", timeout_seconds=0.3))
    started = time.monotonic()
    result = await tool.ainvoke({"order_id": "1"})
    assert result == "The API did not answer in time (limit 0.3 s)."
    assert time.monotonic() - started < 2
    assert api.paths() == ["/slow?order_id=1"]


async def test_oversized_response_is_cut_and_says_so(sqlite_runtime: Runtime, workspace_id: str, api: FakeApi) -> None:
    tool = build(sqlite_runtime, workspace_id, order_config(api.base_url, url=f"{api.base_url}/big", max_response_bytes=1000))
    result = await tool.ainvoke({"order_id": "1"})
    head, text = result.split("\n", 1)
    assert head == "HTTP 200 OK"
    assert text.startswith("x" * 1000 + "\n[truncated: the response is longer than 1000 bytes")
    assert len(result) < 1200


BAD_ARGUMENTS: list[tuple[dict[str, Any], str]] = [
    ({}, "order_id: required"),
    ({"order_id": None}, "order_id: required"),
    ({"order_id": 12}, "order_id: expected string, got integer"),
    ({"order_id": "1", "include_items": "yes"}, "include_items: expected boolean, got string"),
    ({"order_id": "1", "fields": ["a", 2]}, "fields[1]: expected string, got integer"),
    ({"order_id": "1", "admin": True}, "admin: unknown argument (expected: order_id, include_items, fields)"),
]


async def test_bad_arguments_are_an_error_string_and_nothing_is_sent(
    sqlite_runtime: Runtime, workspace_id: str, api: FakeApi
) -> None:
    tool = build(sqlite_runtime, workspace_id, order_config(api.base_url))
    for arguments, expected in BAD_ARGUMENTS:
        result = await tool.ainvoke(arguments)
        assert result.startswith("Invalid arguments: "), arguments
        assert expected in result, (arguments, result)
        assert result.endswith("Fix them and call order_status again.")
    assert api.requests == []


async def test_error_status_text_binary_and_redirect(sqlite_runtime: Runtime, workspace_id: str, api: FakeApi) -> None:
    def tool_for(path: str) -> BaseTool:
        return build(sqlite_runtime, workspace_id, order_config(api.base_url, url=f"{api.base_url}{path}"))

    assert await tool_for("/status/404").ainvoke({"order_id": "1"}) == 'HTTP 404 Not Found\n{"error": "no such order"}'
    assert await tool_for("/text").ainvoke({"order_id": "1"}) == "HTTP 200 OK\nOpen 9–17, closed Sundays"
    assert await tool_for("/latin").ainvoke({"order_id": "1"}) == "HTTP 200 OK\ncafé"
    assert await tool_for("/bogus-charset").ainvoke({"order_id": "1"}) == "HTTP 200 OK\nok"
    image = await tool_for("/image").ainvoke({"order_id": "1"})
    assert image == "HTTP 200 OK\n(a image/png body of 108 bytes, which this tool cannot read)"
    redirect = await tool_for("/redirect").ainvoke({"order_id": "1"})
    assert redirect.startswith(f"HTTP 302 Found (redirect to {api.base_url}/echo?redirected=1; this tool does not follow")
    assert "/echo?redirected=1" not in api.paths()


async def test_unreachable_api_is_an_error_string(sqlite_runtime: Runtime, workspace_id: str) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    tool = build(sqlite_runtime, workspace_id, order_config(f"http://127.0.0.1:{closed_port}"))
    assert await tool.ainvoke({"order_id": "1"}) == "The API could not be reached, so this cannot be looked up right now."


async def test_unknown_host_is_an_error_string(sqlite_runtime: Runtime, workspace_id: str) -> None:
    tool = build(sqlite_runtime, workspace_id, order_config("http://no-such-host.invalid"))
    result = await tool.ainvoke({"order_id": "1"})
    assert result == "The API's host name could not be found, so this cannot be looked up right now."


async def test_cookies_from_one_call_are_not_sent_on_the_next(
    sqlite_runtime: Runtime, workspace_id: str, api: FakeApi
) -> None:
    await build(sqlite_runtime, workspace_id, order_config(api.base_url, url=f"{api.base_url}/cookie")).ainvoke(
        {"order_id": "1"}
    )
    await build(sqlite_runtime, workspace_id, order_config(api.base_url, url=f"{api.base_url}/echo")).ainvoke(
        {"order_id": "1"}
    )
    assert "cookie" not in api.requests[1].headers


# -- private addresses ----------------------------------------------------------------------------------


@pytest.fixture
async def strict_runtime(tmp_path: Path) -> AsyncIterator[Runtime]:
    """A runtime with ``allow_private_urls`` off, as in production."""
    settings = make_settings(tmp_path / "strict", allow_private_urls=False)
    migrate_sync(settings.resolved_database_url)
    runtime = await open_runtime(settings)
    try:
        yield runtime
    finally:
        await close_runtime(runtime)


PRIVATE_HOSTS = ["127.0.0.1", "localhost", "[::1]", "169.254.169.254", "10.1.2.3", "[::ffff:127.0.0.1]"]


async def test_private_addresses_are_refused_unless_allowed(
    strict_runtime: Runtime, api: FakeApi, caplog: pytest.LogCaptureFixture
) -> None:
    for host in PRIVATE_HOSTS:
        tool = build(strict_runtime, "workspace-1", order_config(f"http://{host}:{api.port}"))
        with caplog.at_level(logging.WARNING):
            result = await tool.ainvoke({"order_id": "1"})
        assert result == "This tool's API address is not allowed (it is a private or local network address).", host
        assert "CALLABLE_ALLOW_PRIVATE_URLS" in caplog.text
    assert api.requests == []


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("8.8.8.8", True),
        ("2606:4700:4700::1111", True),
        ("127.0.0.1", False),
        ("10.0.0.1", False),
        ("172.16.5.4", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),
        ("100.64.0.1", False),
        ("0.0.0.0", False),
        ("224.0.0.1", False),
        ("255.255.255.255", False),
        ("::1", False),
        ("::", False),
        ("fe80::1", False),
        ("fc00::1", False),
        ("::ffff:127.0.0.1", False),
        ("::ffff:8.8.8.8", True),
        ("2002:7f00:1::", False),  # 6to4 around 127.0.0.1
        ("64:ff9b::a00:1", False),  # NAT64 around 10.0.0.1
        ("ff02::1", False),
    ],
)
def test_is_public_address(address: str, public: bool) -> None:
    assert is_public_address(ipaddress.ip_address(address)) is public


async def test_resolve_checks_every_address() -> None:
    with pytest.raises(UnsafeAddress, match="'localhost' resolves to"):
        await resolve_checked("localhost", 80, allow_private=False)
    assert ipaddress.ip_address("127.0.0.1") in await resolve_checked("localhost", 80, allow_private=True)
    with pytest.raises(HostNotFound):
        await resolve_checked("no-such-host.invalid", 80, allow_private=True)


# -- configuration ----------------------------------------------------------------------------------------


BASE = {"description": "Look up an order.", "url": "https://api.example.com/orders/{order_id}", "parameters": ORDER_PARAMETERS}


@pytest.mark.parametrize(
    ("changes", "field", "expected"),
    [
        ({"url": "ftp://api.example.com/orders/{order_id}"}, "url", "expected an http:// or https:// URL, got scheme 'ftp'"),
        ({"url": "file:///etc/passwd"}, "url", "scheme 'file'"),
        ({"url": "api.example.com/orders/{order_id}"}, "url", "expected an http:// or https:// URL"),
        ({"url": "https://user:pw@api.example.com/{order_id}"}, "url", "credentials in the URL are not allowed"),
        ({"url": "https://{order_id}.example.com/"}, "url", "placeholders may only appear in the path or query"),
        ({"url": "https://api.example.com/{order-id}"}, "url", "placeholder {order-id} is not a parameter name"),
        ({"url": "https://api.example.com/{order_id"}, "url", "unbalanced"),
        ({"url": "https://api.example.com/{{secret:x.api_key}}"}, "url", "secrets may only be referenced in headers"),
        ({"url": "https://api.example.com/{sku}"}, "url", "placeholder {sku} is not in parameters.properties"),
        ({"url": "https://api.example.com/{fields}"}, "url", "placeholder {fields} must be listed in parameters.required"),
        ({"method": "TRACE"}, "method", "Input should be 'GET', 'POST', 'PUT', 'PATCH' or 'DELETE'"),
        ({"parameters": {"type": "array"}}, "parameters", 'parameters.type: expected "object"'),
        ({"parameters": "order_id"}, "parameters", "Input should be a valid dictionary"),
        (
            {"parameters": {"type": "object", "properties": {"order_id": {"type": "string", "oneOf": []}}}},
            "parameters",
            "parameters.properties.order_id: unsupported keyword 'oneOf'",
        ),
        (
            {"parameters": {"type": "object", "properties": {"order_id": {"type": "text"}}}},
            "parameters",
            "parameters.properties.order_id.type: expected one of string, integer",
        ),
        (
            {"parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["sku"]}},
            "parameters",
            "parameters.required: 'sku' is not in parameters.properties",
        ),
        (
            {"parameters": {"type": "object", "properties": {"order_id": {"description": "x"}}}},
            "parameters",
            "parameters.properties.order_id: expected a 'type'",
        ),
        ({"headers": {"Authorization": "Bearer {{secret:nodot}}"}}, "headers", "a secret reference looks like"),
        ({"headers": {"Host": "evil.example"}}, "headers", "Host: set by the HTTP client"),
        ({"headers": {"Bad Name": "x"}}, "headers", "'Bad Name' is not a valid header name"),
        ({"headers": {"X-A": "line\r\nInjected: 1"}}, "headers", "X-A: expected at most 4000 printable characters"),
        ({"timeout_seconds": 31}, "timeout_seconds", "less than or equal to 30"),
        ({"timeout_seconds": 0}, "timeout_seconds", "greater than 0"),
        ({"max_response_bytes": 10_000_000}, "max_response_bytes", "less than or equal to 200000"),
        ({"query_parameters": ["sku"]}, "query_parameters", "query_parameters: 'sku' is not in parameters.properties"),
        ({"query_parameters": ["order_id"]}, "query_parameters", "'order_id' is already a URL placeholder"),
        ({"body_parameters": ["fields"]}, "body_parameters", "a GET request has no body"),
        (
            {"method": "POST", "query_parameters": ["fields"], "body_parameters": ["fields"]},
            "query_parameters",
            "query_parameters and body_parameters both list 'fields'",
        ),
        (
            {
                "parameters": {
                    "type": "object",
                    "properties": {"order_id": {"type": "string"}, "filter": {"type": "object"}},
                    "required": ["order_id"],
                }
            },
            "parameters",
            "parameters.properties.filter: a query parameter must be a string, number, boolean",
        ),
        ({"descripton": "typo"}, "descripton", "Extra inputs are not permitted"),
        ({"description": ""}, "description", "at least 1 character"),
    ],
)
def test_config_errors_name_the_field(changes: dict[str, Any], field: str, expected: str) -> None:
    with pytest.raises(ValidationError) as caught:
        LookupConfig.model_validate({**BASE, **changes})
    message = str(caught.value)
    assert field in message
    assert expected in message


def test_config_accepts_a_full_example() -> None:
    config = LookupConfig.model_validate(
        {
            **BASE,
            "method": "patch",
            "url": "https://api.example.com/orders/{order_id}?v=2",
            "body_parameters": ["include_items"],
            "query_parameters": ["fields"],
            "headers": {"Authorization": "Token {{secret:shop-api.api_key}}", "Accept": "application/json"},
            "timeout_seconds": 2.5,
            "max_response_bytes": 5000,
        }
    )
    assert config.method == "PATCH"
    assert "{{secret:shop-api.api_key}}" in repr(config)  # a reference, not a secret


# -- the shared client -----------------------------------------------------------------------------------


async def test_one_shared_client_closed_with_the_runtime(tmp_path: Path, api: FakeApi) -> None:
    settings = make_settings(tmp_path / "own")
    migrate_sync(settings.resolved_database_url)
    runtime = await open_runtime(settings)
    try:
        first = build(runtime, "workspace-1", order_config(api.base_url), name="first")
        second = build(runtime, "workspace-1", order_config(api.base_url), name="second")
        await asyncio.gather(first.ainvoke({"order_id": "1"}), second.ainvoke({"order_id": "2"}))
        client = runtime.services.http
        assert isinstance(client, httpx.AsyncClient)
        await first.ainvoke({"order_id": "3"})
        assert runtime.services.http is client
    finally:
        await close_runtime(runtime)
    assert client.is_closed
    assert len(api.requests) == 3


# -- the argument schema subset ---------------------------------------------------------------------------


def test_schema_subset_validation() -> None:
    schema = check_object_schema(
        {
            "type": "object",
            "properties": {
                "size": {"type": "string", "enum": ["S", "M", "L"]},
                "count": {"type": "integer", "minimum": 1},
                "price": {"type": ["number", "null"]},
                "code": {"type": "string", "pattern": "^[A-Z]{3}$", "maxLength": 3},
                "flag": {"type": "boolean"},
                "lines": {
                    "type": "array",
                    "maxItems": 2,
                    "items": {
                        "type": "object",
                        "properties": {"sku": {"type": "string"}},
                        "required": ["sku"],
                        "additionalProperties": False,
                    },
                },
            },
            "required": ["size"],
        }
    )
    ok, problems = validate_arguments(schema, {"size": "M", "count": 2.0, "price": None, "lines": [{"sku": "a"}]})
    assert problems == []
    assert ok == {"size": "M", "count": 2.0, "price": None, "lines": [{"sku": "a"}]}

    def problems_of(arguments: object) -> list[str]:
        return validate_arguments(schema, arguments)[1]

    assert problems_of({"size": "XL"}) == ["size: expected one of 'S', 'M', 'L'"]
    assert problems_of({"size": "S", "count": 0}) == ["count: expected at least 1"]
    assert problems_of({"size": "S", "count": True}) == ["count: expected integer, got boolean"]
    assert problems_of({"size": "S", "flag": 1}) == ["flag: expected boolean, got integer"]
    assert problems_of({"size": "S", "code": "abc"}) == ["code: expected text matching '^[A-Z]{3}$'"]
    assert problems_of({"size": "S", "lines": [{}, {"sku": "b", "x": 1}]}) == [
        "lines[0].sku: required",
        "lines[1].x: unknown field (expected: sku)",
    ]
    assert problems_of({"size": "S", "lines": [{"sku": "a"}] * 3}) == ["lines: expected at most 2 items"]
    assert problems_of(["M"]) == ["expected an object of named arguments, got array"]
    with pytest.raises(SchemaError, match=r"parameters.properties.size.enum: value 3 does not match type string"):
        check_object_schema({"type": "object", "properties": {"size": {"type": "string", "enum": [3]}}})
    with pytest.raises(SchemaError, match=r"parameters.properties.code.pattern: not a valid regular expression"):
        check_object_schema({"type": "object", "properties": {"code": {"type": "string", "pattern": "("}}})
