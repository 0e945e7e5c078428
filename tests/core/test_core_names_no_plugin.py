"""``core/`` never imports nor names a built-in plugin.

Providers, job kinds, formatting dialects, prompt guidance and tool roles reach core through
hooks and types. This test reads every module under ``callable_agents/core`` token by token
(code, strings, comments and docstrings) and fails on:

- an import of ``callable_agents.plugins`` (or anything above core: the CLI, the server);
- a mention of a built-in plugin's distinctive name (``whatsapp``, ``twilio``, ``widget``, ...);
- a string literal that *is* the name of a built-in channel or tool type (``"handoff"``,
  ``"lookup"``): that is core deciding something by a plugin's name.

The names come from the loaded built-in plugins, so a new built-in is covered without
editing this file.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path

import pytest

from callable_agents.core.plugins import load_plugins

CORE = Path(__file__).resolve().parents[2] / "callable_agents" / "core"

# Type names that are also ordinary words of core's own vocabulary; they are checked as
# exact string literals only (a passage's "page" number is not the page channel, and
# "text", "file" and "url" are what a knowledge source is).
COMMON_WORDS = {"page", "text", "file", "url", "lookup", "handoff", "terminal", "openai", "http", "webhook"}
# Core registers its own providers (openai, http) through the same hook, as plugin "core",
# and the dashboard's Test panel channel (core/store/test_channel.py) as "core-test-channel".
CORE_PLUGINS = {"callable_agents", "core", "core-test-channel"}
LITERAL_EXEMPT = {"page", "text", "file", "url", "openai", "http"}
# The chunker counts tokens with the tokenizer file that the wordllama *package* ships: a
# library core depends on (pyproject), not the embeddings plugin of the same name.
ALLOWED = {("knowledge/chunking.py", "wordllama")}


def _builtin_names() -> tuple[set[str], set[str]]:
    """(names never to mention, names never to use as a string literal), from the built-ins."""
    plugins = load_plugins(autoload=False)
    plugin_names = {name for name, _ in plugins.manager.list_name_plugin() if name not in CORE_PLUGINS}
    registries = (plugins.channels, plugins.tools, plugins.loaders, plugins.embeddings, plugins.providers, plugins.job_kinds)
    type_names = {name for registry in registries for name, owner in registry.owners.items() if owner not in CORE_PLUGINS}
    words = {name for name in plugin_names | type_names if name not in COMMON_WORDS}
    literals = {
        name
        for registry in (plugins.channels, plugins.tools, plugins.job_kinds)
        for name, owner in registry.owners.items()
        if owner not in CORE_PLUGINS and name not in LITERAL_EXEMPT
    }
    return words, literals


WORDS, LITERALS = _builtin_names()
MODULES = sorted(path for path in CORE.rglob("*.py") if "migrations" not in path.parts)


def test_the_names_are_found() -> None:
    # Guards the test itself: it must know the built-ins it looks for.
    assert {"whatsapp", "twilio", "widget"} <= WORDS
    assert {"handoff", "lookup", "send_info"} <= LITERALS


@pytest.mark.parametrize("path", MODULES, ids=lambda path: str(path.relative_to(CORE)))
def test_core_module_names_no_builtin_plugin(path: Path) -> None:
    relative = str(path.relative_to(CORE))
    source = path.read_text()
    problems: list[str] = []
    for node in ast.walk(ast.parse(source)):
        modules: list[str] = []
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules = [node.module]
        for module in modules:
            if module.startswith("callable_agents.") and not module.startswith("callable_agents.core"):
                problems.append(f"line {node.lineno}: imports {module} (core imports only core)")
    pattern = re.compile(r"(?<![a-z0-9])(" + "|".join(sorted(map(re.escape, WORDS))) + r")(?![a-z0-9])", re.IGNORECASE)
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type not in (tokenize.NAME, tokenize.STRING, tokenize.COMMENT):
            continue
        for match in pattern.finditer(token.string):
            word = match.group(1).lower()
            if (relative, word) not in ALLOWED:
                problems.append(f"line {token.start[0]}: mentions {word!r}: {token.line.strip()[:100]}")
        if token.type == tokenize.STRING:
            try:
                value = ast.literal_eval(token.string)
            except (ValueError, SyntaxError):
                continue
            if isinstance(value, str) and value in LITERALS:
                problems.append(f"line {token.start[0]}: the string {value!r} is a built-in plugin's type name")
    assert not problems, f"callable_agents/core/{relative} names a built-in plugin:\n" + "\n".join(problems)
