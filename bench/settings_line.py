"""What settings a benchmark ran with, printed beside its figures: the server's defaults,
and every setting the benchmark changed (places, keys and URLs of the fakes left out: they
change where things are, not how the server behaves)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# Where things are, not how they behave.
PLACES = {
    "data_dir", "database_url", "master_key", "public_base_url", "twilio_api_base_url", "twilio_messaging_base_url",
    "host", "port",
}
DEFAULT_REPLY_POLICY = "interrupt (the default)"


def settings_line(changed: Mapping[str, Any], *, reply_policy: str = DEFAULT_REPLY_POLICY, note: str = "") -> str:
    """``settings: server defaults, except a=b, ...; channel reply policy: ...``."""
    shown = {name: value for name, value in changed.items() if name.lower().removeprefix("callable_") not in PLACES}
    text = "settings: server defaults"
    if shown:
        text += ", except " + ", ".join(f"{name}={value}" for name, value in sorted(shown.items()))
    text += f"; channel reply policy: {reply_policy}"
    return text + (f"; {note}" if note else "")


def from_environment(env: Mapping[str, str]) -> dict[str, str]:
    """The ``CALLABLE_*`` variables a server process was started with."""
    return {name: value for name, value in env.items() if name.startswith("CALLABLE_")}


def from_settings(settings: Any) -> dict[str, Any]:
    """The fields of a :class:`~callable_agents.core.config.Settings` that differ from its defaults."""
    changed: dict[str, Any] = {}
    for name, field in type(settings).model_fields.items():
        default = field.get_default(call_default_factory=True)
        if getattr(settings, name) != default:
            changed[name] = getattr(settings, name)
    return changed
