"""The demo: Bella's Bakery & Café, a workspace applied from a packaged file, and the pretend
back office its tools call. Nothing in ``core/`` imports it.

- :mod:`.workspace` — the packaged ``demo.yaml`` and :func:`apply_demo` (as ``callable
  apply`` would, into the workspace ``demo``).
- :mod:`.back_office` — :func:`demo_routes`: order status as JSON, the menu as a PDF, the
  allergen sheet, a stand-in website embedding the widget, under ``/demo-api`` and ``/demo``.
- :mod:`.pdf` — :func:`simple_pdf`, a tiny PDF writer for the menu.
"""

from __future__ import annotations

from callable_agents.demo.back_office import demo_routes
from callable_agents.demo.pdf import simple_pdf
from callable_agents.demo.workspace import (
    DEMO_FILE_NAME,
    DEMO_WORKSPACE,
    WIDGET_TEST_PAGE,
    apply_demo,
    apply_demo_report,
    demo_file_dir,
    demo_file_text,
)

__all__ = [
    "DEMO_FILE_NAME",
    "DEMO_WORKSPACE",
    "WIDGET_TEST_PAGE",
    "apply_demo",
    "apply_demo_report",
    "demo_file_dir",
    "demo_file_text",
    "demo_routes",
    "simple_pdf",
]
