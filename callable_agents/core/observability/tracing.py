"""OpenTelemetry tracing: on when the standard ``OTEL_EXPORTER_OTLP_*`` variables say where to send.

:func:`configure_tracing_from_env` (the server and the worker call it at start) sets up the
SDK with an OTLP/HTTP exporter when ``OTEL_EXPORTER_OTLP_ENDPOINT`` or
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` is set (``OTEL_SERVICE_NAME`` names the service,
``callable-agents`` by default; the exporter reads its other variables itself). Otherwise
nothing is set up and :func:`span` is skipped by one boolean test: no SDK cost at all.
Tests hand :func:`configure_tracing` a provider of their own (an in-memory exporter).

Message content (prompts, completions, tool arguments and results) is recorded only when
``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true`` (the GenAI conventions'
variable); by default spans carry names, ids, models and token counts only.

Across the job boundary the context travels as a W3C ``traceparent`` string: in a job's
payload (``trace``) and in an inbound message's ``meta`` (``traceparent``), so a job run by
another process continues the trace that queued it. LangSmith's tracing (``LANGSMITH_*``
variables, LangChain's callbacks) is separate and keeps working beside this.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, Span, SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import AttributeValue

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

log = logging.getLogger(__name__)

TRACER_NAME = "callable_agents"
DEFAULT_SERVICE_NAME = "callable-agents"
CAPTURE_CONTENT_ENV = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
ENDPOINT_ENVS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")

_PROPAGATOR = TraceContextTextMapPropagator()


class _State:
    enabled = False
    tracer: trace.Tracer = trace.NoOpTracer()
    provider: TracerProvider | None = None
    capture_content = False


def tracing_enabled() -> bool:
    return _State.enabled


def capture_content() -> bool:
    """Whether spans may carry message content (off unless the GenAI variable says true)."""
    return _State.capture_content


def configure_tracing(provider: TracerProvider) -> None:
    """Record spans with ``provider`` from now on (tests; :func:`configure_tracing_from_env`)."""
    _State.provider = provider
    _State.tracer = provider.get_tracer(TRACER_NAME)
    _State.capture_content = os.environ.get(CAPTURE_CONTENT_ENV, "").strip().lower() in ("true", "1", "yes")
    _State.enabled = True


def disable_tracing() -> None:
    """Stop recording spans (the provider is left to its owner)."""
    _State.enabled = False
    _State.tracer = trace.NoOpTracer()
    _State.provider = None


def configure_tracing_from_env() -> bool:
    """Set up the SDK and its OTLP/HTTP exporter if an ``OTEL_EXPORTER_OTLP_*`` endpoint is set;
    True when tracing is on. Called once per process; a second call changes nothing."""
    if _State.enabled:
        return True
    if not any(os.environ.get(name) for name in ENDPOINT_ENVS):
        return False
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    attributes = {} if os.environ.get("OTEL_SERVICE_NAME") else {SERVICE_NAME: DEFAULT_SERVICE_NAME}
    provider = TracerProvider(resource=Resource.create(attributes))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    configure_tracing(provider)
    log.info("tracing: spans exported over OTLP/HTTP")
    return True


def shutdown_tracing() -> None:
    """Flush and stop the exporter set up from the environment (at process exit)."""
    provider = _State.provider
    if provider is not None and _State.enabled:
        provider.shutdown()
    disable_tracing()


def current_traceparent() -> str | None:
    """The current span's W3C ``traceparent``, to carry across a job boundary (None when off)."""
    if not _State.enabled:
        return None
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier.get("traceparent")


def context_of(traceparent: object) -> Context | None:
    """The context a carried ``traceparent`` names, or None (absent, malformed)."""
    if not isinstance(traceparent, str) or not traceparent:
        return None
    context = _PROPAGATOR.extract({"traceparent": traceparent})
    return context if trace.get_current_span(context).get_span_context().is_valid else None


def context_from_headers(headers: Sequence[tuple[bytes, bytes]]) -> Context | None:
    """The caller's context from an incoming request's ``traceparent`` header, if any."""
    for name, value in headers:
        if name == b"traceparent":
            return context_of(value.decode("latin-1"))
    return None


def links_to(traceparents: Sequence[object]) -> list[Link]:
    """Links to the spans the carried ``traceparent`` strings name (the valid ones, once each)."""
    links: list[Link] = []
    seen: set[str] = set()
    for traceparent in traceparents:
        context = context_of(traceparent)
        if context is None or traceparent in seen:
            continue
        seen.add(str(traceparent))
        links.append(Link(trace.get_current_span(context).get_span_context()))
    return links


@contextmanager
def span(
    name: str,
    attributes: Mapping[str, AttributeValue] | None = None,
    *,
    kind: SpanKind = SpanKind.INTERNAL,
    parent: Context | None = None,
    links: Sequence[Link] = (),
) -> Iterator[Span | None]:
    """A span around the block when tracing is on (yields it), else nothing (yields None).

    An exception leaving the block is recorded on the span and sets its status to error.
    """
    if not _State.enabled:
        yield None
        return
    with _State.tracer.start_as_current_span(
        name, context=parent, kind=kind, attributes=attributes, links=links
    ) as current:
        yield current
