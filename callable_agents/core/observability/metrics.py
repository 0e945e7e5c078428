"""Prometheus metrics: what the pipeline counts where it happens, and the exposition.

Names follow Prometheus conventions (``callable_`` prefix, ``_total`` counters, base units:
seconds, tokens). Labels stay low-cardinality: channel kinds, job kinds, outcomes, model
and agent names, tool names, provider error codes; never a conversation, message or
customer id.

**Several processes.** Each process counts in its own memory, unless
``PROMETHEUS_MULTIPROC_DIR`` names a directory (the same one for every process on the host,
emptied before they start): then prometheus-client keeps every value in a file there and a
scrape of any process adds up all of them (``MultiProcessCollector``). The variable must be
set before the process starts (prometheus-client reads it when first imported).

**Gauges from the database.** The inbound queue's depth and age, and the jobs by kind and
state, are read from the database when scraped (:func:`read_backlog`): every process sees
the same rows, so they are right however many processes run, and cost nothing between
scrapes.

The pipeline calls the ``count_*``/``observe_*`` functions below (one call per point);
plugins call :func:`count_webhook` and :func:`count_provider_error` through
``callable_agents.plugin``.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# This process's metrics (not prometheus-client's global registry, which libraries share).
REGISTRY = CollectorRegistry(auto_describe=True)

WEBHOOKS = Counter(
    "callable_webhooks", "Provider webhooks received, by channel kind and outcome "
    "(queued, rejected, failed: not stored, answered 5xx).",
    ["channel", "outcome"], registry=REGISTRY,
)
INBOUND_DUPLICATES = Counter(
    "callable_inbound_duplicates", "Inbound messages recognised as a repeated delivery and stored as nothing.",
    ["channel"], registry=REGISTRY,
)
JOBS_FINISHED = Counter(
    "callable_jobs_finished", "Job runs by kind and outcome (done, retry, failed, released).",
    ["kind", "outcome"], registry=REGISTRY,
)
TURN_SECONDS = Histogram(
    "callable_turn_duration_seconds", "A turn from its job's start to its result stored, by channel kind and outcome.",
    ["channel", "outcome"], registry=REGISTRY,
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120),
)
MODEL_SECONDS = Histogram(
    "callable_model_duration_seconds", "One chat model call, by model and outcome (ok, error).",
    ["model", "outcome"], registry=REGISTRY,
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60),
)
MODEL_TOKENS = Counter(
    "callable_model_tokens", "Tokens the chat models used, by agent, model and type (prompt, completion).",
    ["agent", "model", "type"], registry=REGISTRY,
)
TOOL_CALLS = Counter(
    "callable_tool_calls", "Tool calls the model made, by tool and outcome (ok, error, unknown).",
    ["tool", "outcome"], registry=REGISTRY,
)
SENDS = Counter(
    "callable_sends", "Outbound messages handed to a channel, by channel kind and status "
    "(the provider's status, failed, retry).",
    ["channel", "status"], registry=REGISTRY,
)
PROVIDER_ERRORS = Counter(
    "callable_provider_errors", "Error codes a provider answered (on a send or in a delivery status), "
    "by channel kind and code (the provider's own codes).",
    ["channel", "code"], registry=REGISTRY,
)
HANDOFFS = Counter(
    "callable_handoffs", "Conversations handed to a person, by who decided (agent: a tool; person: taken over).",
    ["by"], registry=REGISTRY,
)
LIVE_EVENTS = Counter(
    "callable_live_events", "Live events relayed between processes, by transport (postgresql, redis) and "
    "direction (sent, received, dropped).",
    ["transport", "direction"], registry=REGISTRY,
)
RATE_LIMITED = Counter(
    "callable_rate_limited", "Requests refused by a rate limit, by limit (webchat_sessions, webchat_messages, sign_in).",
    ["limit"], registry=REGISTRY,
)

_LABEL_TEXT = re.compile(r"[^A-Za-z0-9_.:/-]")
MAX_LABEL_CHARS = 64


def label(value: object) -> str:
    """A label value kept short and plain (a name or code, never free text)."""
    text = str(value) if value is not None else ""
    return _LABEL_TEXT.sub("_", text[:MAX_LABEL_CHARS]) or "none"


# A labelled child, found once per label values: ``labels()`` takes a lock and builds a
# key on every call, which the webhook's path should not pay each time.
@functools.cache
def _webhooks(channel: str, outcome: str) -> Counter:
    return WEBHOOKS.labels(channel, outcome)


@functools.cache
def _jobs_finished(kind: str, outcome: str) -> Counter:
    return JOBS_FINISHED.labels(kind, outcome)


def count_webhook(channel: str, outcome: str) -> None:
    """A provider webhook for ``channel`` ended with ``outcome`` (queued, rejected, failed, ...)."""
    _webhooks(channel, outcome).inc()


def count_live_events(transport: str, direction: str, events: int = 1) -> None:
    LIVE_EVENTS.labels(transport, direction).inc(events)


def count_rate_limited(limit: str) -> None:
    RATE_LIMITED.labels(label(limit)).inc()


def count_duplicate(channel: str) -> None:
    INBOUND_DUPLICATES.labels(channel).inc()


def count_job(kind: str, outcome: str) -> None:
    _jobs_finished(kind, outcome).inc()


def observe_turn(channel: str, outcome: str, seconds: float) -> None:
    TURN_SECONDS.labels(channel, outcome).observe(seconds)


def observe_model(model: str, outcome: str, seconds: float) -> None:
    MODEL_SECONDS.labels(label(model), outcome).observe(seconds)


def count_tokens(agent: str, model: str, prompt: int, completion: int) -> None:
    agent, model = label(agent), label(model)
    if prompt:
        MODEL_TOKENS.labels(agent, model, "prompt").inc(prompt)
    if completion:
        MODEL_TOKENS.labels(agent, model, "completion").inc(completion)


def count_tool_call(tool: str, outcome: str) -> None:
    TOOL_CALLS.labels(label(tool), outcome).inc()


def count_send(channel: str, status: str) -> None:
    SENDS.labels(channel, label(status)).inc()


def count_provider_error(channel: str, code: str | int) -> None:
    """A provider answered error ``code`` (a send refused, a delivery failed)."""
    PROVIDER_ERRORS.labels(channel, label(code)).inc()


def count_handoff(by: str) -> None:
    HANDOFFS.labels(by).inc()


# --- the backlog, read when scraped ----------------------------------------------------------


@dataclass(frozen=True)
class JobCount:
    kind: str
    state: str
    count: int
    oldest_age_seconds: float


@dataclass(frozen=True)
class Backlog:
    """What waits in the database, as one scrape reads it."""

    inbound_depth: int
    inbound_oldest_age_seconds: float
    inbound_errors: int
    jobs: list[JobCount] = field(default_factory=list)


def _age(now: datetime, then: datetime | None) -> float:
    if then is None:
        return 0.0
    if then.tzinfo is None:
        then = then.replace(tzinfo=timezone.utc)
    return max(0.0, (now - then).total_seconds())


def backlog_from_rows(
    now: datetime, inbound: tuple[int, datetime | None, int], jobs: Iterable[tuple[str, str, int, datetime | None]]
) -> Backlog:
    depth, oldest, errors = inbound
    return Backlog(
        inbound_depth=depth,
        inbound_oldest_age_seconds=_age(now, oldest),
        inbound_errors=errors,
        jobs=[JobCount(kind, state, count, _age(now, first)) for kind, state, count, first in jobs],
    )


class _BacklogCollector(Collector):
    def __init__(self, backlog: Backlog) -> None:
        self.backlog = backlog

    def collect(self) -> Iterator[Metric]:
        backlog = self.backlog
        yield GaugeMetricFamily(
            "callable_inbound_queue_depth", "Inbound messages accepted and not yet filed.", value=backlog.inbound_depth
        )
        yield GaugeMetricFamily(
            "callable_inbound_queue_oldest_age_seconds", "How long the oldest message not yet filed has waited.",
            value=backlog.inbound_oldest_age_seconds,
        )
        yield GaugeMetricFamily(
            "callable_inbound_queue_errors", "Queued inbound messages that could not be filed (kept for inspection).",
            value=backlog.inbound_errors,
        )
        jobs = GaugeMetricFamily("callable_jobs", "Jobs by kind and state (pending, running, failed).", labels=["kind", "state"])
        ages = GaugeMetricFamily(
            "callable_jobs_oldest_age_seconds",
            "How long the oldest job of a kind has been runnable (pending) or running.", labels=["kind", "state"],
        )
        for entry in backlog.jobs:
            jobs.add_metric([entry.kind, entry.state], entry.count)
            if entry.state != "failed":
                ages.add_metric([entry.kind, entry.state], entry.oldest_age_seconds)
        yield jobs
        yield ages


class _Counted(Collector):
    """This process's counters (single-process mode), beside the backlog."""

    def collect(self) -> Iterator[Metric]:
        yield from REGISTRY.collect()


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None


def render_metrics(backlog: Backlog | None) -> bytes:
    """The exposition: every process's counters (or this one's), and the backlog if read."""
    registry = CollectorRegistry(auto_describe=False)
    directory = multiprocess_dir()
    if directory is not None:
        from prometheus_client import multiprocess

        multiprocess.MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]  # prometheus-client leaves it untyped
    else:
        registry.register(_Counted())
    if backlog is not None:
        registry.register(_BacklogCollector(backlog))
    return generate_latest(registry)


def sample_value(exposition: str, name: str, labels: dict[str, str] | None = None) -> float | None:
    """The value of one sample in an exposition (tests, scripts): ``None`` when absent."""
    from prometheus_client.parser import text_string_to_metric_families

    wanted = labels or {}
    for family in text_string_to_metric_families(exposition):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in wanted.items()):
                return float(sample.value)
    return None


__all__ = [
    "Backlog",
    "CONTENT_TYPE",
    "count_duplicate",
    "count_handoff",
    "count_job",
    "count_provider_error",
    "count_send",
    "count_tokens",
    "count_tool_call",
    "count_webhook",
    "observe_model",
    "observe_turn",
    "render_metrics",
    "sample_value",
]
