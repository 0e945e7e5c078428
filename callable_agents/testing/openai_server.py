"""A loopback fake of the OpenAI HTTP API, for tests and benchmarks.

:class:`FakeOpenAI` is a real HTTP server on ``127.0.0.1`` (a free port), served from a
background thread, so the real ``openai`` client, ``langchain_openai.ChatOpenAI`` /
``OpenAIEmbeddings`` and even a separate server process can talk to it over a socket::

    with FakeOpenAI() as fake:
        fake.queue_reply("Hello!")
        fake.queue_tool_call("lookup_order", {"order_id": "A1"})
        client = openai.OpenAI(api_key="sk-test", base_url=fake.base_url)
        ...
        assert "opening hours" in fake.chat_requests[0].prompt_text

It speaks the wire format of the endpoints the project uses:

- ``POST /v1/chat/completions`` — plain and streamed (SSE) replies, tool calls,
  ``stream_options.include_usage``, realistic ``id``/``created``/``model``/``usage``.
- ``POST /v1/embeddings`` — deterministic hashed bag-of-words vectors (unit length,
  ``dimension`` wide, or the request's ``dimensions``), for a string, a list of strings or
  token-id lists, as ``float`` lists or ``base64`` (the ``openai`` client asks for base64
  by default). Use ``OpenAIEmbeddings(check_embedding_ctx_length=False)``: with the default
  ``True`` LangChain tokenises with tiktoken, which downloads its encodings from the
  internet (the fake would accept the token ids, but the download would fail offline).
- ``POST /v1/audio/transcriptions`` — multipart upload, scripted ``{"text": ...}``.
- ``GET /v1/models`` and ``GET /v1/models/{id}``.

Answers are scripted per test. Chat completions take the next queued item
(:meth:`FakeOpenAI.queue_reply`, :meth:`~FakeOpenAI.queue_tool_call`,
:meth:`~FakeOpenAI.queue_error`, :meth:`~FakeOpenAI.queue_delay`); when the queue is empty
``fake.responder(request_json)`` answers — by default :func:`echo_responder`, which echoes
the last user message, so long-running benchmarks need no script. A queued item is consumed
when the request arrives, so a client that times out and retries gets the *next* item.

Every request is recorded (:class:`RecordedRequest`: path, lower-cased headers, parsed JSON
or multipart body) in arrival order; :attr:`FakeOpenAI.requests` and friends return
thread-safe snapshots, and :meth:`FakeOpenAI.wait_for_requests` waits for requests made by
another thread or process.

Closing stops the server, drops kept-alive connections, interrupts scripted delays and joins
every thread it started.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import re
import random
import socket
import string
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Literal, Self
from urllib.parse import parse_qs, urlsplit

__all__ = [
    "DEFAULT_EMBEDDING_DIMENSION",
    "DEFAULT_MODELS",
    "FakeOpenAI",
    "RecordedRequest",
    "Responder",
    "ScriptedDelay",
    "ScriptedError",
    "ScriptedReply",
    "ScriptedToolCall",
    "UploadedFile",
    "echo_responder",
    "embed_text",
    "last_tool_result",
    "last_user_message",
    "message_text",
    "system_prompt",
]

DEFAULT_EMBEDDING_DIMENSION = 64
DEFAULT_MODELS = ("gpt-4o-mini", "gpt-4o", "text-embedding-3-small", "whisper-1")
DEFAULT_TRANSCRIPTION = "Hello, this is a voice note."

Endpoint = Literal["chat", "embeddings", "transcriptions"]
_ENDPOINT_PATHS: dict[str, Endpoint] = {
    "/v1/chat/completions": "chat",
    "/v1/embeddings": "embeddings",
    "/v1/audio/transcriptions": "transcriptions",
}
_ERROR_TYPES = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "unsupported_country_region_territory"),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
}
_ID_ALPHABET = string.ascii_letters + string.digits
_IDS = random.Random()


# --------------------------------------------------------------------------- script items


@dataclass(frozen=True)
class ScriptedToolCall:
    """One function call in a scripted assistant reply.

    ``arguments`` is sent JSON-encoded; pass a ``str`` to send it verbatim (e.g. malformed
    JSON, to test how the caller copes).
    """

    name: str
    arguments: Mapping[str, Any] | str = field(default_factory=dict)
    id: str | None = None

    def arguments_json(self) -> str:
        if isinstance(self.arguments, str):
            return self.arguments
        return json.dumps(dict(self.arguments), ensure_ascii=False)


@dataclass(frozen=True)
class ScriptedReply:
    """An assistant message: text, tool calls, or both.

    ``delay`` holds the whole response back (to provoke client timeouts); ``chunk_delay``
    spaces out streamed chunks. ``finish_reason`` defaults to ``"tool_calls"`` when there are
    tool calls, else ``"stop"``.
    """

    text: str | None = None
    tool_calls: tuple[ScriptedToolCall, ...] = ()
    delay: float = 0.0
    chunk_delay: float = 0.0
    finish_reason: str | None = None

    @property
    def resolved_finish_reason(self) -> str:
        if self.finish_reason:
            return self.finish_reason
        return "tool_calls" if self.tool_calls else "stop"


@dataclass(frozen=True)
class ScriptedError:
    """An HTTP error in OpenAI's shape: ``{"error": {"message", "type", "param", "code"}}``.

    ``body`` replaces the whole JSON body (a ``str`` is sent as it is, e.g. an HTML error
    page from a proxy); ``headers`` adds response headers such as ``retry-after``.
    """

    status: int = 500
    message: str = "The server had an error while processing your request. Sorry about that!"
    body: Mapping[str, Any] | str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0

    def payload(self) -> bytes:
        if isinstance(self.body, str):
            return self.body.encode()
        if self.body is not None:
            return json.dumps(dict(self.body)).encode()
        error_type, code = _ERROR_TYPES.get(self.status, ("server_error", None))
        return json.dumps(
            {"error": {"message": self.message, "type": error_type, "param": None, "code": code}}
        ).encode()


@dataclass(frozen=True)
class ScriptedDelay:
    """Answer as if nothing were queued, but only after ``seconds``."""

    seconds: float


ScriptItem = ScriptedReply | ScriptedError | ScriptedDelay | str
"""What a queue holds. A ``str`` is a text reply (chat) or a transcript (transcriptions)."""

Responder = Callable[[dict[str, Any]], "str | ScriptedReply | ScriptedError"]
"""Answers a chat completion request (its parsed JSON body) when the queue is empty."""


# --------------------------------------------------------------------------- recordings


@dataclass(frozen=True)
class UploadedFile:
    """A file part of a multipart request."""

    filename: str | None
    content_type: str | None
    content: bytes


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the fake received it. Header names are lower-case."""

    method: str
    path: str
    query: Mapping[str, list[str]]
    headers: Mapping[str, str]
    body: bytes
    json_body: Any
    form: Mapping[str, str]
    files: Mapping[str, UploadedFile]
    received_at: float

    @property
    def authorization(self) -> str | None:
        return self.headers.get("authorization")

    @property
    def bearer_token(self) -> str | None:
        """The API key the client sent (``Authorization: Bearer <key>``)."""
        value = self.authorization or ""
        scheme, _, token = value.partition(" ")
        return token.strip() if scheme.lower() == "bearer" and token.strip() else None

    @property
    def model(self) -> str | None:
        if isinstance(self.json_body, dict):
            return self.json_body.get("model")
        return self.form.get("model")

    @property
    def messages(self) -> list[dict[str, Any]]:
        if isinstance(self.json_body, dict) and isinstance(self.json_body.get("messages"), list):
            return self.json_body["messages"]
        return []

    @property
    def tools(self) -> list[dict[str, Any]]:
        if isinstance(self.json_body, dict) and isinstance(self.json_body.get("tools"), list):
            return self.json_body["tools"]
        return []

    @property
    def tool_names(self) -> list[str]:
        return [tool.get("function", {}).get("name", "") for tool in self.tools]

    @property
    def system_prompt(self) -> str:
        return system_prompt(self.json_body if isinstance(self.json_body, dict) else {})

    @property
    def last_user_message(self) -> str:
        return last_user_message(self.json_body if isinstance(self.json_body, dict) else {})

    @property
    def prompt_text(self) -> str:
        """Every message's text, joined: what the model was shown."""
        return "\n".join(message_text(message) for message in self.messages)

    @property
    def stream(self) -> bool:
        return isinstance(self.json_body, dict) and bool(self.json_body.get("stream"))


# --------------------------------------------------------------------------- helpers


def message_text(message: Mapping[str, Any]) -> str:
    """The text of one chat message, whether ``content`` is a string or a list of parts."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            part.get("text", "") for part in content if isinstance(part, dict) and part.get("type") == "text"
        )
    return ""


def system_prompt(request_json: Mapping[str, Any]) -> str:
    """The system (or developer) messages of a chat request, joined."""
    messages = request_json.get("messages") or []
    return "\n".join(
        message_text(m) for m in messages if isinstance(m, dict) and m.get("role") in ("system", "developer")
    )


def last_user_message(request_json: Mapping[str, Any]) -> str:
    """The text of the last ``user`` message of a chat request, or ``""``."""
    for message in reversed(request_json.get("messages") or []):
        if isinstance(message, dict) and message.get("role") == "user":
            return message_text(message)
    return ""


def last_tool_result(request_json: Mapping[str, Any]) -> str:
    """The text of the last ``tool`` message of a chat request (what the last tool call
    answered), or ``""``: a responder that replies with it shows the tool's result reached the
    model."""
    for message in reversed(request_json.get("messages") or []):
        if isinstance(message, dict) and message.get("role") == "tool":
            return message_text(message)
    return ""


def echo_responder(request_json: dict[str, Any]) -> str:
    """The default answer: echo the last user message, so unscripted runs still reply."""
    text = last_user_message(request_json)
    return f"Echo: {text}" if text else "Hello! How can I help you today?"


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def _count_tokens(text: str) -> int:
    """A rough tokenizer (words and punctuation), good enough for plausible ``usage``."""
    return len(re.findall(r"\w+|[^\w\s]", text))


def embed_text(text: str, dimension: int = DEFAULT_EMBEDDING_DIMENSION) -> list[float]:
    """The fake's embedding of ``text``: a signed, hashed bag of words, unit length.

    Texts sharing words get a high cosine similarity, so retrieval tests behave sensibly.
    """
    tokens = _words(text) or [text.strip() or "<empty>"]
    vector = [0.0] * dimension
    for token in tokens:
        digest = hashlib.blake2b(token.encode(), digest_size=8).digest()
        bucket = int.from_bytes(digest[:4], "little") % dimension
        vector[bucket] += 1.0 if digest[4] & 1 else -1.0
    norm = sum(v * v for v in vector) ** 0.5
    if norm == 0.0:  # opposite signs cancelled out exactly; any fixed unit vector will do
        vector[0], norm = 1.0, 1.0
    return [v / norm for v in vector]


def _new_id(prefix: str) -> str:
    # Unique, not secret: secrets.choice per character cost ~28 us an id, on every request.
    return prefix + "".join(_IDS.choices(_ID_ALPHABET, k=24))


def _split_stream_text(text: str) -> list[str]:
    """Split text into token-like pieces (each word with its leading whitespace)."""
    return re.findall(r"\s*\S+|\s+", text) or [text]


def _split_arguments(arguments: str) -> list[str]:
    """Split a tool call's JSON arguments into a few fragments, as OpenAI streams them."""
    size = max(1, len(arguments) // 3)
    return [arguments[i : i + size] for i in range(0, len(arguments), size)] or [""]


def _mask_key(key: str) -> str:
    return f"{key[:3]}***{key[-4:]}" if len(key) > 10 else "***"


class _BadRequest(Exception):
    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


# --------------------------------------------------------------------------- the fake


class FakeOpenAI:
    """An OpenAI-compatible server on 127.0.0.1 with scripted answers and recorded requests.

    Args:
        responder: answers chat requests when the queue is empty (default:
            :func:`echo_responder`). Also settable later as ``fake.responder``.
        api_key: if given, requests whose bearer token differs get OpenAI's 401.
        embedding_dimension: width of embeddings when the request gives no ``dimensions``.
        models: the ids ``GET /v1/models`` lists.
        default_transcription: the transcript when no transcription is queued.
    """

    def __init__(
        self,
        *,
        responder: Responder | None = None,
        api_key: str | None = None,
        embedding_dimension: int = DEFAULT_EMBEDDING_DIMENSION,
        models: Sequence[str] = DEFAULT_MODELS,
        default_transcription: str = DEFAULT_TRANSCRIPTION,
    ) -> None:
        if embedding_dimension < 1:
            raise ValueError(f"embedding_dimension: expected a positive integer, got {embedding_dimension}")
        self.responder: Responder = responder or echo_responder
        self.api_key = api_key
        self.embedding_dimension = embedding_dimension
        self.models = list(models)
        self.default_transcription = default_transcription
        self._lock = threading.Condition()
        self._queues: dict[Endpoint, deque[ScriptItem]] = {
            "chat": deque(),
            "embeddings": deque(),
            "transcriptions": deque(),
        }
        self._requests: list[RecordedRequest] = []
        self._errors: list[BaseException] = []
        self._closing = threading.Event()
        self._server: _LoopbackServer | None = None
        self._thread: threading.Thread | None = None

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> Self:
        """Bind a free port and serve in a background thread. Idempotent."""
        if self._server is not None:
            return self
        self._closing.clear()
        server = _LoopbackServer(("127.0.0.1", 0), _Handler)
        server.fake = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.01}, name=f"FakeOpenAI:{self.port}", daemon=True
        )
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving, drop open connections, interrupt delays, join all threads."""
        server, thread = self._server, self._thread
        if server is None:
            return
        self._closing.set()
        server.shutdown()
        server.close_connections()
        server.server_close()  # joins the per-connection threads (block_on_close)
        if thread is not None:
            thread.join()
        self._server = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("FakeOpenAI is not running; use `with FakeOpenAI() as fake:` or call start()")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """The server root, e.g. ``http://127.0.0.1:54321``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """What to pass as ``base_url`` to the OpenAI / LangChain clients (ends with ``/v1``)."""
        return f"{self.url}/v1"

    # ----------------------------------------------------------------- scripting

    def queue(self, *items: ScriptItem, endpoint: Endpoint = "chat") -> None:
        """Queue answers for ``endpoint``, consumed one per request in order."""
        if endpoint not in self._queues:
            raise ValueError(f"endpoint: expected one of {sorted(self._queues)}, got {endpoint!r}")
        for item in items:
            if not isinstance(item, ScriptedReply | ScriptedError | ScriptedDelay | str):
                raise TypeError(f"cannot queue {type(item).__name__}; expected a Scripted* item or str")
            if endpoint == "embeddings" and isinstance(item, ScriptedReply | str):
                raise TypeError("embeddings are computed; only ScriptedError and ScriptedDelay can be queued")
            if endpoint == "transcriptions" and isinstance(item, ScriptedReply):
                raise TypeError("queue a transcript as a str")
        with self._lock:
            self._queues[endpoint].extend(items)

    def queue_reply(self, text: str, *, delay: float = 0.0, chunk_delay: float = 0.0) -> None:
        """Queue a plain assistant text reply."""
        self.queue(ScriptedReply(text=text, delay=delay, chunk_delay=chunk_delay))

    def queue_tool_call(
        self,
        name: str,
        arguments: Mapping[str, Any] | str | None = None,
        *,
        id: str | None = None,
        text: str | None = None,
        delay: float = 0.0,
    ) -> None:
        """Queue an assistant reply that calls one tool."""
        call = ScriptedToolCall(name=name, arguments=arguments if arguments is not None else {}, id=id)
        self.queue(ScriptedReply(text=text, tool_calls=(call,), delay=delay))

    def queue_tool_calls(
        self,
        calls: Iterable[ScriptedToolCall | tuple[str, Mapping[str, Any] | str]],
        *,
        text: str | None = None,
        delay: float = 0.0,
    ) -> None:
        """Queue one assistant reply that calls several tools (parallel tool calls)."""
        scripted = tuple(
            call if isinstance(call, ScriptedToolCall) else ScriptedToolCall(name=call[0], arguments=call[1])
            for call in calls
        )
        if not scripted:
            raise ValueError("calls: expected at least one tool call")
        self.queue(ScriptedReply(text=text, tool_calls=scripted, delay=delay))

    def queue_error(
        self,
        status: int = 500,
        body: Mapping[str, Any] | str | None = None,
        *,
        message: str | None = None,
        headers: Mapping[str, str] | None = None,
        delay: float = 0.0,
        endpoint: Endpoint = "chat",
    ) -> None:
        """Queue an HTTP error response (OpenAI's error JSON unless ``body`` is given)."""
        error = ScriptedError(status=status, body=body, headers=dict(headers or {}), delay=delay)
        if message is not None:
            error = dataclasses.replace(error, message=message)
        self.queue(error, endpoint=endpoint)

    def queue_delay(self, seconds: float, *, endpoint: Endpoint = "chat") -> None:
        """Queue a normal (unscripted) answer that is held back ``seconds``."""
        self.queue(ScriptedDelay(seconds), endpoint=endpoint)

    def queue_transcription(self, text: str) -> None:
        """Queue the transcript of the next ``/v1/audio/transcriptions`` request."""
        self.queue(text, endpoint="transcriptions")

    def pending(self, endpoint: Endpoint = "chat") -> int:
        """How many queued items ``endpoint`` has not consumed yet."""
        with self._lock:
            return len(self._queues[endpoint])

    def reset(self) -> None:
        """Forget queued items, recorded requests and kept errors."""
        with self._lock:
            for queue in self._queues.values():
                queue.clear()
            self._requests.clear()
            self._errors.clear()

    # ----------------------------------------------------------------- recordings

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request so far, in arrival order (a snapshot)."""
        with self._lock:
            return list(self._requests)

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        return self._requests_to("/v1/chat/completions")

    @property
    def embedding_requests(self) -> list[RecordedRequest]:
        return self._requests_to("/v1/embeddings")

    @property
    def transcription_requests(self) -> list[RecordedRequest]:
        return self._requests_to("/v1/audio/transcriptions")

    @property
    def errors(self) -> list[BaseException]:
        """Exceptions raised while answering, by ``responder`` or the fake (each got a 500)."""
        with self._lock:
            return list(self._errors)

    def _requests_to(self, path: str) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self._requests if r.path == path]

    def wait_for_requests(self, count: int, *, path: str | None = None, timeout: float = 5.0) -> list[RecordedRequest]:
        """Block until ``count`` requests (to ``path``, if given) have arrived; return them.

        For requests made by another thread or process. Raises ``TimeoutError`` naming how
        many arrived.
        """
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                matching = [r for r in self._requests if path is None or r.path == path]
                if len(matching) >= count:
                    return matching
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(
                        f"expected {count} request(s){f' to {path}' if path else ''} within {timeout}s, "
                        f"got {len(matching)}"
                    )
                self._lock.wait(remaining)

    # ----------------------------------------------------------------- used by the handler

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)
            self._lock.notify_all()

    def _keep_error(self, exc: BaseException) -> None:
        with self._lock:
            self._errors.append(exc)

    def _next_item(self, endpoint: Endpoint) -> ScriptItem | None:
        with self._lock:
            queue = self._queues[endpoint]
            return queue.popleft() if queue else None

    def _respond_dynamically(self, request_json: dict[str, Any]) -> ScriptedReply | ScriptedError:
        try:
            answer = self.responder(request_json)
        except Exception as exc:  # a bug in a test's responder must not hang the client
            self._keep_error(exc)
            return ScriptedError(status=500, message=f"FakeOpenAI responder raised {type(exc).__name__}: {exc}")
        if isinstance(answer, str):
            return ScriptedReply(text=answer)
        if isinstance(answer, ScriptedReply | ScriptedError):
            return answer
        message = f"FakeOpenAI responder returned {type(answer).__name__}; expected str, ScriptedReply or ScriptedError"
        self._keep_error(TypeError(message))
        return ScriptedError(status=500, message=message)

    def _sleep(self, seconds: float) -> bool:
        """Wait ``seconds`` unless the fake is closing; False means stop answering."""
        return seconds <= 0 or not self._closing.wait(seconds)


# --------------------------------------------------------------------------- HTTP plumbing


class _LoopbackServer(ThreadingHTTPServer):
    """A threading server that can drop kept-alive connections so close() never hangs."""

    daemon_threads = False
    block_on_close = True
    fake: FakeOpenAI

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(address, handler)
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like api.openai.com; the clients pool connections
    # Headers and body go out in separate writes; with Nagle's algorithm on, the client's
    # delayed ACK would hold every response back by ~40 ms on loopback.
    disable_nagle_algorithm = True
    server: _LoopbackServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Silence the default stderr access log."""

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    # ----------------------------------------------------------------- dispatch

    @property
    def fake(self) -> FakeOpenAI:
        return self.server.fake

    def _dispatch(self) -> None:
        try:
            request = self._read_request()
            self.fake._record(request)
            if not self._authorised(request):
                return
            self._route(request)
        except _BadRequest as exc:
            self._send_error(ScriptedError(status=400, body={"error": {
                "message": str(exc), "type": "invalid_request_error", "param": exc.param, "code": None,
            }}))
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            self.close_connection = True  # the client gave up (e.g. it timed out)
        except Exception as exc:  # a bug in the fake: answer 500 and keep it for the test to see
            self.fake._keep_error(exc)
            self.close_connection = True
            try:
                self._send_error(ScriptedError(status=500, message=f"FakeOpenAI failed: {type(exc).__name__}: {exc}"))
            except OSError:
                pass  # headers may already be out (mid-stream); closing the connection says enough

    def _route(self, request: RecordedRequest) -> None:
        method, path = request.method, request.path
        if method == "POST" and path == "/v1/chat/completions":
            self._chat_completions(request)
        elif method == "POST" and path == "/v1/embeddings":
            self._embeddings(request)
        elif method == "POST" and path == "/v1/audio/transcriptions":
            self._transcriptions(request)
        elif method == "GET" and path == "/v1/models":
            created = 1_700_000_000
            models = [{"id": m, "object": "model", "created": created, "owned_by": "system"} for m in self.fake.models]
            self._send_json(200, {"object": "list", "data": models})
        elif method == "GET" and path.startswith("/v1/models/"):
            model_id = path.removeprefix("/v1/models/")
            if model_id in self.fake.models:
                self._send_json(
                    200, {"id": model_id, "object": "model", "created": 1_700_000_000, "owned_by": "system"}
                )
            else:
                self._send_error(ScriptedError(
                    status=404, message=f"The model '{model_id}' does not exist or you do not have access to it."
                ))
        else:
            self._send_error(ScriptedError(status=404, body={"error": {
                "message": f"Invalid URL ({method} {path})", "type": "invalid_request_error", "param": None,
                "code": None,
            }}))

    def _authorised(self, request: RecordedRequest) -> bool:
        expected = self.fake.api_key
        if expected is None:
            return True
        token = request.bearer_token
        if token == expected:
            return True
        if token is None:
            message = (
                "You didn't provide an API key. You need to provide your API key in an Authorization header "
                "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
            )
        else:
            message = f"Incorrect API key provided: {_mask_key(token)}."
        self._send_error(ScriptedError(status=401, message=message))
        return False

    # ----------------------------------------------------------------- reading

    def _read_request(self) -> RecordedRequest:
        split = urlsplit(self.path)
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        content_type = headers.get("content-type", "")
        json_body: Any = None
        form: dict[str, str] = {}
        files: dict[str, UploadedFile] = {}
        problem: str | None = None
        if content_type.startswith("application/json") and body:
            try:
                json_body = json.loads(body)
            except ValueError as exc:
                problem = f"We could not parse the JSON body of your request. ({exc})"
        elif content_type.startswith("multipart/form-data"):
            form, files = _parse_multipart(content_type, body)
        request = RecordedRequest(
            method=self.command,
            path=split.path.rstrip("/") or "/",
            query=parse_qs(split.query),
            headers=headers,
            body=body,
            json_body=json_body,
            form=form,
            files=files,
            received_at=time.time(),
        )
        if problem is not None:
            self.fake._record(request)
            raise _BadRequest(problem)
        return request

    # ----------------------------------------------------------------- endpoints

    def _chat_completions(self, request: RecordedRequest) -> None:
        body = _require_json_object(request)
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise _BadRequest("you must provide a model parameter", "model")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise _BadRequest("'messages' must contain at least one message", "messages")
        for index, sent in enumerate(messages):
            if not isinstance(sent, dict) or sent.get("role") not in (
                "system", "developer", "user", "assistant", "tool", "function",
            ):
                raise _BadRequest(f"Invalid value for 'messages[{index}].role'.", f"messages[{index}].role")

        item = self.fake._next_item("chat")
        if isinstance(item, ScriptedDelay):
            if not self.fake._sleep(item.seconds):
                return
            item = None
        if item is None:
            item = self.fake._respond_dynamically(body)
        if isinstance(item, str):
            item = ScriptedReply(text=item)
        if isinstance(item, ScriptedError):
            if self.fake._sleep(item.delay):
                self._send_error(item)
            return
        assert isinstance(item, ScriptedReply)
        if not self.fake._sleep(item.delay):
            return

        completion_id = _new_id("chatcmpl-")
        created = int(time.time())
        choices = max(1, int(body.get("n") or 1))
        tool_calls = [(call, call.id or _new_id("call_")) for call in item.tool_calls]
        usage = _usage(body, item)
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            self._stream_completion(completion_id, created, model, item, tool_calls, usage, include_usage)
            return
        message: dict[str, Any] = {"role": "assistant", "content": item.text, "refusal": None, "annotations": []}
        if tool_calls:
            message["tool_calls"] = [
                {"id": call_id, "type": "function", "function": {"name": call.name, "arguments": call.arguments_json()}}
                for call, call_id in tool_calls
            ]
        self._send_json(200, {
            "id": completion_id,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": [
                {"index": i, "message": message, "logprobs": None, "finish_reason": item.resolved_finish_reason}
                for i in range(choices)
            ],
            "usage": usage,
            "service_tier": "default",
            "system_fingerprint": "fp_fakeopenai",
        })

    def _stream_completion(
        self,
        completion_id: str,
        created: int,
        model: str,
        reply: ScriptedReply,
        tool_calls: list[tuple[ScriptedToolCall, str]],
        usage: dict[str, Any],
        include_usage: bool,
    ) -> None:
        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
            data: dict[str, Any] = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "service_tier": "default",
                "system_fingerprint": "fp_fakeopenai",
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
            }
            if include_usage:
                data["usage"] = None
            return data

        def events() -> Iterator[dict[str, Any]]:
            yield chunk({"role": "assistant", "content": "" if reply.text is not None or not tool_calls else None,
                         "refusal": None})
            for piece in _split_stream_text(reply.text) if reply.text else []:
                yield chunk({"content": piece})
            for index, (call, call_id) in enumerate(tool_calls):
                yield chunk({"tool_calls": [{"index": index, "id": call_id, "type": "function",
                                             "function": {"name": call.name, "arguments": ""}}]})
                for fragment in _split_arguments(call.arguments_json()):
                    yield chunk({"tool_calls": [{"index": index, "function": {"arguments": fragment}}]})
            yield chunk({}, reply.resolved_finish_reason)
            if include_usage:
                yield {
                    "id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model,
                    "service_tier": "default", "system_fingerprint": "fp_fakeopenai", "choices": [], "usage": usage,
                }

        self._start_event_stream()
        for number, event in enumerate(events()):
            if number and not self.fake._sleep(reply.chunk_delay):
                return
            self._write_chunk(f"data: {json.dumps(event)}\n\n".encode())
        self._write_chunk(b"data: [DONE]\n\n")
        self._write_chunk(b"")

    def _embeddings(self, request: RecordedRequest) -> None:
        body = _require_json_object(request)
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise _BadRequest("you must provide a model parameter", "model")
        texts = _embedding_inputs(body.get("input"))
        dimension = body.get("dimensions", self.fake.embedding_dimension)
        if not isinstance(dimension, int) or isinstance(dimension, bool) or dimension < 1:
            raise _BadRequest("Invalid value for 'dimensions': expected a positive integer.", "dimensions")
        encoding = body.get("encoding_format", "float")
        if encoding not in ("float", "base64"):
            raise _BadRequest("Invalid value for 'encoding_format': expected 'float' or 'base64'.", "encoding_format")

        item = self.fake._next_item("embeddings")
        if isinstance(item, ScriptedDelay) and not self.fake._sleep(item.seconds):
            return
        if isinstance(item, ScriptedError):
            if self.fake._sleep(item.delay):
                self._send_error(item)
            return

        data = []
        for index, text in enumerate(texts):
            vector = embed_text(text, dimension)
            encoded: list[float] | str = (
                base64.b64encode(struct.pack(f"<{dimension}f", *vector)).decode() if encoding == "base64" else vector
            )
            data.append({"object": "embedding", "index": index, "embedding": encoded})
        tokens = sum(_count_tokens(text) for text in texts)
        self._send_json(200, {
            "object": "list", "data": data, "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        })

    def _transcriptions(self, request: RecordedRequest) -> None:
        if "file" not in request.files:
            raise _BadRequest("Missing required parameter: 'file'.", "file")
        if not request.form.get("model"):
            raise _BadRequest("you must provide a model parameter", "model")
        response_format = request.form.get("response_format", "json")
        if response_format not in ("json", "text", "verbose_json", "srt", "vtt"):
            raise _BadRequest(f"Invalid value for 'response_format': {response_format!r}.", "response_format")

        item = self.fake._next_item("transcriptions")
        if isinstance(item, ScriptedDelay):
            if not self.fake._sleep(item.seconds):
                return
            item = None
        if isinstance(item, ScriptedError):
            if self.fake._sleep(item.delay):
                self._send_error(item)
            return
        text = item if isinstance(item, str) else self.fake.default_transcription
        if response_format == "json":
            self._send_json(200, {"text": text})
        elif response_format == "verbose_json":
            duration = round(len(request.files["file"].content) / 16_000, 2)
            self._send_json(200, {"task": "transcribe", "language": "english", "duration": duration, "text": text,
                                  "segments": []})
        else:
            self._send_bytes(200, (text + "\n").encode(), "text/plain; charset=utf-8")

    # ----------------------------------------------------------------- writing

    def _common_headers(self) -> None:
        self.send_header("x-request-id", _new_id("req_"))
        self.send_header("openai-processing-ms", "1")
        self.send_header("openai-version", "2020-10-01")

    def _send_bytes(
        self, status: int, payload: bytes, content_type: str, headers: Mapping[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self._common_headers()
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(payload)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)
        self.wfile.flush()

    def _send_json(self, status: int, payload: Any) -> None:
        self._send_bytes(status, json.dumps(payload).encode(), "application/json")

    def _send_error(self, error: ScriptedError) -> None:
        content_type = "text/html; charset=utf-8" if isinstance(error.body, str) else "application/json"
        self._send_bytes(error.status, error.payload(), content_type, error.headers)

    def _start_event_stream(self) -> None:
        self.send_response(200)
        self._common_headers()
        self.send_header("content-type", "text/event-stream; charset=utf-8")
        self.send_header("cache-control", "no-cache")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        self.wfile.flush()

    def _write_chunk(self, data: bytes) -> None:
        """One HTTP/1.1 chunk; empty ``data`` ends the body."""
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()


def _require_json_object(request: RecordedRequest) -> dict[str, Any]:
    if not isinstance(request.json_body, dict):
        raise _BadRequest(
            "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your "
            "HTTP library correctly. The OpenAI API expects a JSON payload.)"
        )
    return request.json_body


def _embedding_inputs(raw: Any) -> list[str]:
    """Normalise an embeddings ``input`` (text, texts, token ids, lists of token ids) to texts."""
    def is_token_list(value: Any) -> bool:
        return isinstance(value, list) and bool(value) and all(
            isinstance(t, int) and not isinstance(t, bool) for t in value
        )

    if isinstance(raw, str):
        items: list[Any] = [raw]
    elif is_token_list(raw):
        items = [raw]
    elif isinstance(raw, list) and raw:
        items = raw
    else:
        raise _BadRequest("'input' is a required property: a string, array of strings or array of token arrays.",
                          "input")
    texts = []
    for index, item in enumerate(items):
        if isinstance(item, str):
            if not item:
                raise _BadRequest(f"'$.input[{index}]' is invalid: the input must not be an empty string.", "input")
            texts.append(item)
        elif is_token_list(item):
            texts.append(" ".join(f"tok{token}" for token in item))
        else:
            raise _BadRequest(f"'$.input[{index}]' is invalid: expected a string or an array of integers.", "input")
    return texts


def _parse_multipart(content_type: str, body: bytes) -> tuple[dict[str, str], dict[str, UploadedFile]]:
    """Split a multipart/form-data body into text fields and files, byte for byte."""
    match = re.search(r'boundary="?([^";]+)"?', content_type)
    if not match:
        raise _BadRequest("Invalid multipart body: no boundary.")
    delimiter = b"--" + match.group(1).encode()
    form: dict[str, str] = {}
    files: dict[str, UploadedFile] = {}
    for part in body.split(delimiter)[1:]:
        if part.startswith(b"--"):
            break
        head, _, content = part.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        content = content.removesuffix(b"\r\n")
        part_headers = {}
        for line in head.decode("utf-8", "replace").split("\r\n"):
            name, _, value = line.partition(":")
            part_headers[name.strip().lower()] = value.strip()
        disposition = part_headers.get("content-disposition", "")
        name_match = re.search(r'\bname="([^"]*)"', disposition)
        if not name_match:
            continue
        filename_match = re.search(r'\bfilename="([^"]*)"', disposition)
        if filename_match:
            files[name_match.group(1)] = UploadedFile(
                filename=filename_match.group(1), content_type=part_headers.get("content-type"), content=content
            )
        else:
            form[name_match.group(1)] = content.decode("utf-8", "replace")
    return form, files


def _usage(body: Mapping[str, Any], reply: ScriptedReply) -> dict[str, Any]:
    """Plausible token counts: the prompt (messages and tool schemas) and the reply."""
    prompt_tokens = 3 + sum(4 + _count_tokens(message_text(m)) for m in body.get("messages") or [])
    if body.get("tools"):
        prompt_tokens += _count_tokens(json.dumps(body["tools"]))
    completion_tokens = _count_tokens(reply.text or "") + sum(
        3 + _count_tokens(call.name + call.arguments_json()) for call in reply.tool_calls
    )
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0, "audio_tokens": 0, "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0,
        },
    }
