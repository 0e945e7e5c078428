"""The ``lookup`` tool: call an HTTP API the business configures and hand the model the answer.

A business describes one endpoint (method, URL template, the parameters the model fills as a
JSON schema, headers) and the agent can then, say, look up an order by its number.

Where each argument goes:

* a name used as a placeholder in the URL (``https://api.example.com/orders/{order_id}``)
  is substituted there, URL-encoded (``/`` included, so it stays one path segment);
* names listed in ``query_parameters`` go to the query string, names listed in
  ``body_parameters`` go to the JSON body;
* any other argument goes to the query string for GET and DELETE, and to the JSON body for
  POST, PUT and PATCH.

Header values may reference a vault secret as ``{{secret:INTEGRATION.FIELD}}``; it is read
at call time and never appears in the tool's description, its errors, logs or results (a
response that echoes it back has it replaced). Requests may only reach public addresses
unless the operator sets ``CALLABLE_ALLOW_PRIVATE_URLS`` (see :mod:`.http_safety`), redirects
are reported rather than followed (a redirect could lead anywhere), and the response is read
up to ``max_response_bytes``.

Every expected failure (bad arguments, timeout, unreachable API, missing secret) comes back
to the model as a short sentence it can act on; nothing is raised into the graph.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote, urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from callable_agents.plugin import (
    CallableError,
    HostNotFound,
    NotFound,
    PinnedTarget,
    ToolContext,
    ToolType,
    UnsafeAddress,
    check_http_url,
    guarded_targets,
    hookimpl,
    read_integration_secret,
    read_named_integrations,
    shared_http_client,
)
from callable_agents.plugins.lookup.json_arguments import (
    PROPERTY_NAME,
    SCALAR_TYPES,
    SchemaError,
    check_object_schema,
    schema_types,
    validate_arguments,
)

if TYPE_CHECKING:
    from langchain_core.tools import BaseTool

log = logging.getLogger(__name__)

Method = Literal["GET", "POST", "PUT", "PATCH", "DELETE"]
QUERY_BY_DEFAULT: frozenset[str] = frozenset({"GET", "DELETE"})
MAX_TIMEOUT_SECONDS = 30
MAX_RESPONSE_BYTES = 200_000
PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
# Integration names may contain dots, so the field is what follows the last one.
SECRET_REFERENCE = re.compile(r"\{\{secret:([A-Za-z0-9][A-Za-z0-9_.-]{0,99})\.([A-Za-z_][A-Za-z0-9_]{0,63})\}\}")
HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}$")
# Set by the HTTP client from the request itself; a configured value would only conflict.
RESERVED_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection"})
TEXT_CONTENT_TYPES = ("json", "xml", "javascript", "x-www-form-urlencoded", "yaml", "csv")
REDACTED = "[secret]"


# -- configuration --------------------------------------------------------------------------


def url_placeholders(template: str) -> list[str]:
    """The parameter names a URL template substitutes, in order, each once."""
    names: list[str] = []
    for name in PLACEHOLDER.findall(template):
        if not PROPERTY_NAME.match(name):
            raise ValueError(
                f"placeholder {{{name[:40]}}} is not a parameter name (expected letters, digits and '_')"
            )
        if name not in names:
            names.append(name)
    return names


class LookupConfig(BaseModel):
    """One HTTP endpoint the agent may call."""

    model_config = ConfigDict(extra="forbid")

    description: str = Field(
        min_length=1, max_length=1000, description="What the tool does and when to use it, as told to the model."
    )
    method: Method = Field(default="GET", description="HTTP method.")
    url: str = Field(
        max_length=2000,
        description="URL template, e.g. https://api.example.com/orders/{order_id}; placeholders are parameters.",
    )
    parameters: dict[str, Any] = Field(
        default_factory=lambda: {"type": "object", "properties": {}},
        description='JSON schema of the arguments the model fills: {"type": "object", "properties": {...}, "required": [...]}.',
    )
    query_parameters: list[str] | None = Field(
        default=None, description="Parameters sent in the query string (default: the rest, for GET and DELETE)."
    )
    body_parameters: list[str] | None = Field(
        default=None, description="Parameters sent in the JSON body (default: the rest, for POST, PUT and PATCH)."
    )
    headers: dict[str, str] = Field(
        default_factory=dict, description="Request headers; a value may contain {{secret:INTEGRATION.FIELD}}."
    )
    timeout_seconds: float = Field(default=10, gt=0, le=MAX_TIMEOUT_SECONDS, description="Give up after this long.")
    max_response_bytes: int = Field(
        default=20_000, ge=256, le=MAX_RESPONSE_BYTES, description="Read at most this much of the response."
    )

    @field_validator("method", mode="before")
    @classmethod
    def _upper_method(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("url")
    @classmethod
    def _check_url(cls, template: str) -> str:
        if "{{" in template:
            raise ValueError("secrets may only be referenced in headers, not in the URL")
        url_placeholders(template)
        if "{" in PLACEHOLDER.sub("", template) or "}" in PLACEHOLDER.sub("", template):
            raise ValueError("unbalanced '{' or '}': placeholders look like {order_id}")
        if "{" in urlsplit(template).netloc:
            raise ValueError("placeholders may only appear in the path or query, not in the host")
        if "#" in template:
            raise ValueError("expected a URL without a '#fragment'")
        check_http_url(PLACEHOLDER.sub("x", template))
        return template

    @field_validator("parameters")
    @classmethod
    def _check_parameters(cls, schema: dict[str, Any]) -> dict[str, Any]:
        try:
            return check_object_schema(schema, "parameters")
        except SchemaError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("headers")
    @classmethod
    def _check_headers(cls, headers: dict[str, str]) -> dict[str, str]:
        for name, value in headers.items():
            if not HEADER_NAME.match(name):
                raise ValueError(f"{name[:40]!r} is not a valid header name")
            if name.lower() in RESERVED_HEADERS:
                raise ValueError(f"{name}: set by the HTTP client, not configurable")
            if len(value) > 4000 or any(ord(char) < 32 and char != "\t" or ord(char) == 127 for char in value):
                raise ValueError(f"{name}: expected at most 4000 printable characters on one line")
            if "{{" in SECRET_REFERENCE.sub("", value) or "}}" in SECRET_REFERENCE.sub("", value):
                raise ValueError(f"{name}: a secret reference looks like {{{{secret:INTEGRATION.FIELD}}}}")
        return headers

    @model_validator(mode="after")
    def _check_argument_places(self) -> LookupConfig:
        properties: dict[str, Any] = self.parameters.get("properties", {})
        required = set(self.parameters.get("required", []))
        in_path = url_placeholders(self.url)
        for name in in_path:
            if name not in properties:
                raise ValueError(f"url: placeholder {{{name}}} is not in parameters.properties")
            if name not in required:
                raise ValueError(f"url: placeholder {{{name}}} must be listed in parameters.required")
            if not set(schema_types(properties[name])) <= SCALAR_TYPES:
                raise ValueError(f"parameters.properties.{name}: a URL placeholder must be a string, number or boolean")
        query = self.query_parameters or []
        body = self.body_parameters or []
        for field, names in (("query_parameters", query), ("body_parameters", body)):
            for name in names:
                if name not in properties:
                    raise ValueError(f"{field}: {name[:40]!r} is not in parameters.properties")
                if name in in_path:
                    raise ValueError(f"{field}: {name!r} is already a URL placeholder")
            if len(set(names)) != len(names):
                raise ValueError(f"{field}: lists a name twice")
        both = sorted(set(query) & set(body))
        if both:
            raise ValueError(f"query_parameters and body_parameters both list {both[0]!r}")
        if body and self.method == "GET":
            raise ValueError("body_parameters: a GET request has no body; use query_parameters")
        for name in argument_places(self).query:
            types = set(schema_types(properties[name])) - {"null"}  # a null is left out of the query
            items = properties[name].get("items", {})
            if types == {"array"} and set(schema_types(items)) <= SCALAR_TYPES and schema_types(items):
                continue
            if not types <= SCALAR_TYPES:
                raise ValueError(
                    f"parameters.properties.{name}: a query parameter must be a string, number, boolean "
                    "or an array of those (send objects in the body)"
                )
        return self


@dataclass(frozen=True)
class ArgumentPlaces:
    """Where each parameter goes in the request."""

    path: frozenset[str]
    query: frozenset[str]
    body: frozenset[str]


def argument_places(config: LookupConfig) -> ArgumentPlaces:
    """Apply the placement rule in the module docstring."""
    path = set(url_placeholders(config.url))
    query = set(config.query_parameters or ())
    body = set(config.body_parameters or ())
    for name in config.parameters.get("properties", {}):
        if name not in path | query | body:
            (query if config.method in QUERY_BY_DEFAULT else body).add(name)
    return ArgumentPlaces(frozenset(path), frozenset(query), frozenset(body))


# -- the request ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ApiRequest:
    method: str
    url: httpx.URL
    body: dict[str, Any] | None


def _as_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def build_request(config: LookupConfig, arguments: Mapping[str, Any]) -> ApiRequest:
    """The request for validated ``arguments``: path values URL-encoded, the rest placed by the rule."""
    places = argument_places(config)
    url = PLACEHOLDER.sub(lambda match: quote(_as_text(arguments[match[1]]), safe=""), config.url)
    query: list[tuple[str, str]] = []
    for name, value in arguments.items():
        if name in places.query and value is not None:
            for item in value if isinstance(value, list) else [value]:
                query.append((name, _as_text(item)))
    body = {name: value for name, value in arguments.items() if name in places.body}
    target = httpx.URL(url)
    if query:
        target = target.copy_merge_params(tuple(query))
    return ApiRequest(config.method, target, body or None)


class MissingCredentials(Exception):
    """A referenced secret could not be read. The message names the reference, never a value."""


async def resolve_headers(context: ToolContext, templates: Mapping[str, str]) -> tuple[dict[str, str], list[str]]:
    """Header values with their secret references filled in, and the secret values used (to redact)."""
    references = {ref for value in templates.values() for ref in SECRET_REFERENCE.findall(value)}
    if not references:
        return dict(templates), []
    runtime = context.runtime
    values: dict[tuple[str, str], str] = {}
    try:
        integrations = await read_named_integrations(
            runtime, context.workspace_id, sorted({name for name, _field in references})
        )
    except NotFound as exc:
        raise MissingCredentials(str(exc)) from None
    for integration_name, field in sorted(references):
        try:
            integration = integrations[integration_name]
            if isinstance(integration, NotFound):
                raise integration
            values[(integration_name, field)] = read_integration_secret(runtime, integration, field)
        except CallableError as exc:
            raise MissingCredentials(f"{{{{secret:{integration_name}.{field}}}}}: {exc}") from None
    headers = {
        name: SECRET_REFERENCE.sub(lambda match: values[(match[1], match[2])], value)
        for name, value in templates.items()
    }
    return headers, list(values.values())


@dataclass(frozen=True)
class ApiAnswer:
    status_code: int
    reason: str
    content_type: str
    charset: str | None
    location: str | None
    body: bytes
    truncated: bool


async def _read_capped(response: httpx.Response, limit: int) -> tuple[bytes, bool]:
    """Read at most ``limit`` bytes; stop (and drop the connection) as soon as there are more."""
    received = bytearray()
    async for chunk in response.aiter_bytes():
        received += chunk
        if len(received) > limit:
            return bytes(received[:limit]), True
    return bytes(received), False


async def exchange(
    client: httpx.AsyncClient,
    request: ApiRequest,
    headers: Mapping[str, str],
    targets: list[PinnedTarget],
    config: LookupConfig,
) -> ApiAnswer:
    """Send the request to the first checked address that accepts a connection; read the answer."""
    last_error: httpx.ConnectError | None = None
    for target in targets:
        merged = httpx.Headers({"Accept": "application/json, text/*;q=0.9, */*;q=0.5"})
        merged.update(headers)
        merged.update(target.headers)
        try:
            async with client.stream(
                request.method,
                target.url,
                headers=merged,
                json=request.body,
                extensions=target.extensions,
                timeout=config.timeout_seconds,
                follow_redirects=False,
            ) as response:
                body, truncated = await _read_capped(response, config.max_response_bytes)
                return ApiAnswer(
                    status_code=response.status_code,
                    reason=response.reason_phrase,
                    content_type=response.headers.get("content-type", ""),
                    charset=response.charset_encoding,
                    location=response.headers.get("location"),
                    body=body,
                    truncated=truncated,
                )
        except httpx.ConnectError as exc:
            last_error = exc
    assert last_error is not None  # guarded_targets never returns an empty list
    raise last_error


# -- the answer handed to the model -------------------------------------------------------------


def _is_text(content_type: str) -> bool:
    return not content_type or content_type.startswith("text/") or any(kind in content_type for kind in TEXT_CONTENT_TYPES)


def render_answer(answer: ApiAnswer, limit: int) -> str:
    """The status line and the body as text: JSON re-encoded compactly, others decoded, capped."""
    head = f"HTTP {answer.status_code} {answer.reason}".rstrip()
    if 300 <= answer.status_code < 400 and answer.location:
        head += f" (redirect to {answer.location[:300]}; this tool does not follow redirects)"
    if not answer.body:
        return f"{head}\n(empty body)"
    content_type = answer.content_type.split(";", 1)[0].strip().lower()
    if not _is_text(content_type):
        return f"{head}\n(a {content_type} body of {len(answer.body)} bytes, which this tool cannot read)"
    try:
        text = answer.body.decode(answer.charset or "utf-8", errors="replace")
    except LookupError:  # a charset Python does not know: UTF-8 is the best guess
        text = answer.body.decode("utf-8", errors="replace")
    if "json" in content_type and not answer.truncated:
        try:
            text = json.dumps(json.loads(text), ensure_ascii=False, separators=(", ", ": "))
        except ValueError:
            pass  # not valid JSON after all: give the model the text as it came
    if answer.truncated or len(text) > limit:
        text = text[:limit] + f"\n[truncated: the response is longer than {limit} bytes; only the start is shown]"
    return f"{head}\n{text}"


def redact(text: str, secrets: list[str]) -> str:
    """Replace every secret value (and its URL-encoded form) in ``text``."""
    for secret in sorted(secrets, key=len, reverse=True):
        if len(secret) >= 4:
            text = text.replace(secret, REDACTED).replace(quote(secret, safe=""), REDACTED)
    return text


# -- the tool -------------------------------------------------------------------------------------


async def call_api(context: ToolContext, config: LookupConfig, arguments: Mapping[str, Any]) -> str:
    """One tool call: validate, build, check the address, send, read, render. Never raises for
    expected failures: the returned sentence tells the model what happened."""
    cleaned, problems = validate_arguments(config.parameters, arguments)
    if problems:
        return f"Invalid arguments: {'; '.join(problems)}. Fix them and call {context.tool_name} again."
    try:
        request = build_request(config, cleaned)
    except (httpx.InvalidURL, ValueError) as exc:
        return f"Invalid arguments: they do not make a valid URL ({exc}). Fix them and call {context.tool_name} again."
    host = request.url.host
    secrets: list[str] = []
    started = time.monotonic()
    try:
        async with asyncio.timeout(config.timeout_seconds):
            headers, secrets = await resolve_headers(context, config.headers)
            targets = await guarded_targets(request.url, allow_private=context.runtime.settings.allow_private_urls)
            answer = await exchange(shared_http_client(context.runtime), request, headers, targets, config)
    except MissingCredentials as exc:
        log.warning("lookup tool %r in workspace %s: cannot read secret %s", context.tool_name, context.workspace_id, exc)
        return "The API's credentials are not set up, so this cannot be looked up right now."
    except UnsafeAddress as exc:
        log.warning("lookup tool %r in workspace %s refused: %s", context.tool_name, context.workspace_id, exc)
        return "This tool's API address is not allowed (it is a private or local network address)."
    except HostNotFound:
        return "The API's host name could not be found, so this cannot be looked up right now."
    except (TimeoutError, httpx.TimeoutException):
        return f"The API did not answer in time (limit {config.timeout_seconds:g} s)."
    except httpx.HTTPError as exc:
        log.warning("lookup tool %r: %s %s failed: %s", context.tool_name, request.method, host, type(exc).__name__)
        return "The API could not be reached, so this cannot be looked up right now."
    except Exception as exc:  # a broken tool must not break the conversation
        log.error(
            "lookup tool %r: %s %s failed unexpectedly: %s: %s",
            context.tool_name, request.method, host, type(exc).__name__, redact(str(exc), secrets),
        )
        return "The lookup failed unexpectedly, so this cannot be looked up right now."
    log.info(
        "lookup tool %r: %s %s -> %d in %.0f ms",
        context.tool_name, request.method, host, answer.status_code, (time.monotonic() - started) * 1000,
    )
    return redact(render_answer(answer, config.max_response_bytes), secrets)


def build_lookup_tool(context: ToolContext) -> BaseTool:
    """The LangChain tool for one agent and turn: the model sees the description and the schema."""
    # Imported here: loading plugins (every CLI command) should not pay for importing LangChain.
    from langchain_core.tools import StructuredTool

    config = context.config
    if not isinstance(config, LookupConfig):
        raise TypeError(f"lookup tool {context.tool_name!r}: expected a LookupConfig, got {type(config).__name__}")

    async def lookup(**arguments: Any) -> str:
        return await call_api(context, config, arguments)

    return StructuredTool.from_function(
        coroutine=lookup, name=context.tool_name, description=config.description, args_schema=config.parameters
    )


@hookimpl
def register_tools() -> list[ToolType]:
    return [
        ToolType(
            name="lookup",
            description="Call an HTTP API you configure (e.g. look up an order by its number) and give the answer to the agent.",
            config_schema=LookupConfig,
            factory=build_lookup_tool,
        )
    ]
