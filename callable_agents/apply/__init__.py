"""Agents as code: apply a workspace declared in one YAML file, idempotently.

A file declares one workspace and, in it, knowledge bases with their sources, agents (with
their tools and knowledge bases) and channels::

    version: 1
    workspace: {slug: bakery, name: "Bella's Bakery"}
    knowledge_bases:
      - name: bakery
        sources:
          - {kind: text, title: Opening hours, text: "Mon-Fri 7-18 ..."}
          - {kind: url, url: "https://example.com/menu", options: {max_pages: 20}}
          - {kind: file, path: docs/menu.pdf}        # relative to this file
    agents:
      - name: assistant
        system_prompt: ...
        knowledge_bases: [bakery]
        tools:
          - {type: lookup, name: order_status, config: {url: "${CALLABLE_BASE_URL}/demo-api/orders/{order_id}"}}
    channels:
      - {name: website, kind: widget, agent: assistant, config: {...}}

**Secrets are never written in the file.** A key named like a secret (``api_key``,
``auth_token``, ``password``, ``secret``, ``Authorization``, ...) with a literal value is
refused: connect an integration (``callable integrations connect ...``) and reference it by
name (``model_settings.integration``, a channel's ``integration``).

**Variables.** ``${CALLABLE_BASE_URL}`` in any string becomes the server's base URL
(``CALLABLE_PUBLIC_BASE_URL``, or ``http://HOST:PORT``), so a tool can call this server.
Other ``${UPPER_CASE}`` names are refused (environment variables are not read: they would
carry secrets into stored configs); text in ``${lower_case}`` is left as it is.

**Secret references.** ``{{secret:INTEGRATION.FIELD}}`` (a lookup tool's headers) is kept as
written and read from the vault when the tool runs. Apply checks each one against the
workspace: the integration exists, FIELD is one of its provider's secret fields, and it is set.

**File sources** are read relative to the file's folder and must stay inside it (or inside
the ``source_root`` given, ``callable apply --source-root DIR``); the data folder, key files
and links leading out are refused (:mod:`.files`).

**How it runs.** The whole document is checked first — YAML syntax and size (nesting and
what aliases expand to), every field, tool and channel configs against their plugin schemas,
source options against their loaders, file sources read — then references (integrations,
secret references, knowledge bases, agents, public slugs) against the database. Any problem stops the apply before anything is written, with
``FILE:LINE: path.to.field: what was expected``. Then one transaction writes only what
differs from what is stored (an unchanged object keeps its ``updated_at``), and new or
changed sources are indexed after it commits. Apply never deletes: objects not in the file
are left as they are.

**The package**, one concept a module, in the order an apply runs:

- :mod:`.document` — the YAML with the line of every key (:func:`parse_yaml`) and the
  problems collected against it (:class:`~.document.Problems`).
- :mod:`.values` — ``${CALLABLE_BASE_URL}`` substituted; literal secrets refused; secret
  references collected.
- :mod:`.files` — where file sources may be read from, and the reading.
- :mod:`.schema` — the file's own fields (workspace, knowledge bases, sources).
- :mod:`.checks` — :func:`check_document`: everything checked without the database, the
  result a :class:`~.plan.Plan`.
- :mod:`.plan` — the plan in stored form and how it differs from what is stored.
- :mod:`.write` — the plan written in one transaction (references checked first).
- :mod:`.run` — :func:`apply_document` and :func:`apply_file`: check, write, index.
- :mod:`.report` — :class:`ApplyReport` (what was created, updated, unchanged) and
  :class:`ApplyError`.
"""

from __future__ import annotations

from callable_agents.apply.checks import check_document
from callable_agents.apply.document import parse_yaml
from callable_agents.apply.plan import Plan
from callable_agents.apply.report import ApplyError, ApplyReport, ReportItem
from callable_agents.apply.run import apply_document, apply_file
from callable_agents.apply.values import BASE_URL_VARIABLE

__all__ = [
    "BASE_URL_VARIABLE",
    "ApplyError",
    "ApplyReport",
    "Plan",
    "ReportItem",
    "apply_document",
    "apply_file",
    "check_document",
    "parse_yaml",
]
