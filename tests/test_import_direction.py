"""Imports run one way: core imports neither the demo nor agents-as-code, and the admin API's
modules go requests -> endpoint modules -> routes."""

from __future__ import annotations

import ast
from pathlib import Path

import callable_agents.api
import callable_agents.core

CORE_DIR = Path(callable_agents.core.__file__).parent
API_DIR = Path(callable_agents.api.__file__).parent
# module -> the API modules it may import
ENDPOINT_MODULES = ("channel_setup", "agents", "knowledge", "channels", "integrations", "members", "keys", "conversations", "catalog")
ALLOWED = {
    "requests": set(),
    "openapi": set(),
    **{name: {"requests"} for name in ENDPOINT_MODULES},
    "routes": {"requests", "openapi", *ENDPOINT_MODULES},
}


def _imported_modules(path: Path) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            found.append((node.lineno, node.module or ""))
        elif isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
    return found


def _api_imports(path: Path) -> set[str]:
    return {
        module.removeprefix("callable_agents.api.").split(".")[0]
        for _line, module in _imported_modules(path)
        if module.startswith("callable_agents.api.")
    }


def test_api_modules_import_one_way() -> None:
    for path in sorted(API_DIR.glob("*.py")):
        if path.stem == "__init__":
            continue
        assert path.stem in ALLOWED, f"{path.name}: a new API module; say in ALLOWED which API modules it may import"
        imported = _api_imports(path)
        assert imported <= ALLOWED[path.stem], f"{path.name} imports {sorted(imported - ALLOWED[path.stem])}: that would close a cycle"


def test_core_imports_neither_the_demo_nor_apply() -> None:
    outside = ("callable_agents.demo", "callable_agents.apply")
    offenders = [
        f"{path.relative_to(CORE_DIR.parent)}:{line}: imports {module}"
        for path in sorted(CORE_DIR.rglob("*.py"))
        for line, module in _imported_modules(path)
        if module.startswith(outside)
    ]
    assert not offenders, "core must not depend on the demo or agents-as-code:\n" + "\n".join(offenders)
