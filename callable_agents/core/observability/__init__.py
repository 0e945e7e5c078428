"""What an operator sees of a running process: metrics, traces and structured logs.

* ``metrics.py``  Prometheus counters and histograms the pipeline increments where things
  happen (webhooks, dedupe hits, jobs, turns, model calls and tokens, tool calls, sends,
  provider error codes, handoffs), correct across processes with
  ``PROMETHEUS_MULTIPROC_DIR``; the queue and job gauges are read from the database when
  scraped. ``render_metrics`` makes the exposition.
* ``endpoint.py`` serves ``/metrics``: on its own port (``CALLABLE_METRICS_PORT``) or on the
  server's behind a bearer token (``CALLABLE_METRICS_TOKEN``); never public by default.
* ``tracing.py``  OpenTelemetry spans after the GenAI semantic conventions (``invoke_agent``,
  ``chat``, ``execute_tool``, ``retrieval``) from the webhook through the jobs to the send;
  the SDK is set up only when the standard ``OTEL_EXPORTER_OTLP_*`` variables are set.
* ``logs.py``     ``CALLABLE_LOG_FORMAT=json``: one JSON object a line, carrying the ids the
  pipeline sets in context variables (workspace, channel, conversation, message, job).

Everything here is cheap when unused: a counter increment is a dictionary lookup and an
addition, a span is skipped by one boolean test when tracing is off.
"""
