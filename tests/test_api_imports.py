"""The admin API's modules import one way: requests -> endpoint modules -> routes."""

from __future__ import annotations

import ast
from pathlib import Path

import callable_agents.api

API_DIR = Path(callable_agents.api.__file__).parent
# module -> the API modules it may import
ALLOWED = {
    "requests": set(),
    "conversations": {"requests"},
    "routes": {"requests", "conversations"},
}


def _api_imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            modules = [node.module or ""]
        elif isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        else:
            continue
        for module in modules:
            if module.startswith("callable_agents.api."):
                names.add(module.removeprefix("callable_agents.api.").split(".")[0])
    return names


def test_api_modules_import_one_way() -> None:
    for path in sorted(API_DIR.glob("*.py")):
        if path.stem == "__init__":
            continue
        assert path.stem in ALLOWED, f"{path.name}: a new API module; say in ALLOWED which API modules it may import"
        imported = _api_imports(path)
        assert imported <= ALLOWED[path.stem], f"{path.name} imports {sorted(imported - ALLOWED[path.stem])}: that would close a cycle"
