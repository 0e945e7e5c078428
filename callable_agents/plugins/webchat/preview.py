"""How a widget or a public page looks with a configuration, for the dashboard's live preview.

The channel type's ``preview``: a small HTML document drawn with the widget's own colours,
title, greeting and position (the text colour on the accent is chosen as ``widget.js`` does),
with no script and nothing fetched. Every configured value is escaped.
"""

from __future__ import annotations

from html import escape
from typing import Any

from pydantic import BaseModel

from callable_agents.plugins.webchat.config import DEFAULT_COLOR, PageConfig, WidgetConfig

SAMPLE_QUESTION = "Are you open on Sunday?"
DEFAULT_GREETING = "Hi! How can I help you today?"


def text_on(color: str) -> str:
    """Black or white text on ``color`` (#RRGGBB), as widget.js picks it."""
    value = int(color[1:], 16)

    def channel(v: int) -> float:
        c = v / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    luminance = 0.2126 * channel((value >> 16) & 255) + 0.7152 * channel((value >> 8) & 255) + 0.0722 * channel(value & 255)
    return "#111111" if luminance > 0.35 else "#ffffff"


_STYLE = """
*{box-sizing:border-box}body{margin:0;font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:#1f2328;
background:repeating-linear-gradient(45deg,#f4f5f7,#f4f5f7 12px,#eceef1 12px,#eceef1 24px);height:100vh;position:relative;overflow:hidden}
.panel{position:absolute;bottom:84px;width:min(300px,calc(100% - 24px));background:#fff;border-radius:12px;
box-shadow:0 8px 30px rgba(0,0,0,.25);overflow:hidden}
.head{background:var(--accent);color:var(--on);padding:10px 14px;font-weight:600;min-height:44px;overflow-wrap:anywhere}
.log{padding:10px;display:flex;flex-direction:column;gap:8px;background:#f7f8fa}
.bubble{padding:7px 11px;border-radius:14px;background:#fff;border:1px solid #dfe3e8;max-width:85%;overflow-wrap:anywhere}
.customer{align-self:flex-end;background:var(--accent);color:var(--on);border-color:transparent}
.composer{border-top:1px solid #dfe3e8;padding:8px;color:#6b7280}
.launcher{position:absolute;bottom:16px;width:52px;height:52px;border-radius:50%;background:var(--accent);
box-shadow:0 4px 14px rgba(0,0,0,.25)}
.right .panel,.right .launcher{right:16px}.left .panel,.left .launcher{left:16px}
.page .panel{position:static;margin:16px auto;width:min(420px,calc(100% - 24px))}
"""


def _document(*, color: str, title: str, greeting: str, layout: str) -> str:
    accent = color or DEFAULT_COLOR
    launcher = '<div class="launcher" aria-hidden="true"></div>' if layout != "page" else ""
    return (
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Preview</title>"
        f"<style>{_STYLE}</style></head>"
        f'<body class="{escape(layout)}" style="--accent:{escape(accent)};--on:{text_on(accent)}">'
        '<div class="panel" role="img" aria-label="Preview of the chat">'
        f'<div class="head">{escape(title)}</div>'
        '<div class="log">'
        f'<div class="bubble">{escape(greeting or DEFAULT_GREETING)}</div>'
        f'<div class="bubble customer">{escape(SAMPLE_QUESTION)}</div>'
        "</div>"
        '<div class="composer">Type a message…</div>'
        "</div>"
        f"{launcher}</body></html>"
    )


def widget_preview(settings: Any, config: BaseModel) -> str:
    """The widget, open, in the corner its configuration puts it."""
    assert isinstance(config, WidgetConfig)
    look = config.appearance
    layout = "left" if look.position == "bottom-left" else "right"
    return _document(color=look.color, title=look.title, greeting=look.greeting, layout=layout)


def page_preview(settings: Any, config: BaseModel) -> str:
    """The public page's chat (its title defaults to the business's name)."""
    assert isinstance(config, PageConfig)
    return _document(color=config.color, title=config.title or "Your business", greeting=config.greeting, layout="page")
