"""Built-in plugins stand on the public surface only: ``callable_agents.plugin`` and their own package.

A third-party plugin can import nothing else from Callable Agents without depending on
internals, so a built-in one may not either. The check reads every module under
``callable_agents/plugins/`` (imports under ``if TYPE_CHECKING:`` and inside functions
count too) and names each offending file, line and import.
"""

from __future__ import annotations

import ast
from pathlib import Path

import callable_agents
import callable_agents.plugin as surface

PLUGINS_DIR = Path(callable_agents.__file__).parent / "plugins"
SURFACE = "callable_agents.plugin"

# Modules another engineer is rewriting in this same change (the channel's send and media
# paths, the handoff and send_info tools); the lead empties this when those land.


def _own_package(path: Path) -> str:
    """``callable_agents.plugins.<name>`` for a module of plugin package or module ``<name>``."""
    relative = path.relative_to(PLUGINS_DIR)
    return f"callable_agents.plugins.{relative.parts[0].removesuffix('.py')}"


def _imported_modules(tree: ast.AST, module_name: str) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = module_name.rsplit(".", node.level)[0]
                found.append((node.lineno, f"{base}.{node.module}" if node.module else base))
            elif node.module:
                found.append((node.lineno, node.module))
    return found


def _allowed(imported: str, own_package: str) -> bool:
    if imported != "callable_agents" and not imported.startswith("callable_agents."):
        return True  # the standard library and third-party libraries
    return imported == SURFACE or imported == own_package or imported.startswith(own_package + ".")


def surface_violations() -> list[str]:
    problems = []
    for path in sorted(PLUGINS_DIR.rglob("*.py")):
        relative = path.relative_to(PLUGINS_DIR).as_posix()
        if path.parent == PLUGINS_DIR and path.name == "__init__.py":
            continue
        module_name = "callable_agents.plugins." + relative.removesuffix(".py").replace("/", ".").removesuffix(".__init__")
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        own = _own_package(path)
        for line, imported in _imported_modules(tree, module_name):
            if not _allowed(imported, own):
                problems.append(
                    f"callable_agents/plugins/{relative}:{line} imports {imported}: import it from "
                    f"{SURFACE} (export it there if a plugin needs it) or from {own}"
                )
    return problems


def test_built_in_plugins_import_only_the_public_surface_and_their_own_package() -> None:
    problems = surface_violations()
    assert not problems, "plugins reach past the public surface:\n" + "\n".join(problems)


def test_the_check_catches_an_internal_import(tmp_path: Path) -> None:
    tree = ast.parse("from callable_agents.core.models import Message\nimport callable_agents.plugins.other\n")
    imported = _imported_modules(tree, "callable_agents.plugins.mine")
    assert [(line, name) for line, name in imported if not _allowed(name, "callable_agents.plugins.mine")] == [
        (1, "callable_agents.core.models"),
        (2, "callable_agents.plugins.other"),
    ]
    assert _allowed("callable_agents.plugin", "callable_agents.plugins.mine")
    assert _allowed("callable_agents.plugins.mine.config", "callable_agents.plugins.mine")


def test_the_surface_exports_what_it_lists() -> None:
    missing = [name for name in surface.__all__ if not hasattr(surface, name)]
    assert not missing, f"callable_agents.plugin lists but does not define: {missing}"
