"""The layers stay apart: runner imports nothing from tui, and tui imports none of the heavy ML
libraries (not even lazily, inside a function). Read from the source with ast, so an import hidden in
a function body that no test happens to call is caught too."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import HEAVY_MODULES, ROOT


def imports_of(path: Path) -> list[tuple[int, str]]:
    """(line, top-level module) for every import statement in the file, wherever it is."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name.split(".")[0]) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module.split(".")[0]))
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module":
            if node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
                found.append((node.lineno, node.args[0].value.split(".")[0]))
    return found


def offenders(package: str, forbidden: set[str]) -> list[str]:
    return [f"{path.relative_to(ROOT)}:{line}: imports {module}"
            for path in sorted((ROOT / package).rglob("*.py"))
            for line, module in imports_of(path) if module in forbidden]


def test_runner_imports_nothing_from_tui() -> None:
    assert offenders("runner", {"tui"}) == []


def test_tui_imports_no_heavy_ml_library() -> None:
    assert offenders("tui", set(HEAVY_MODULES)) == []


def test_the_checker_sees_imports_inside_functions(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("import os\n\ndef later():\n    from torch import nn\n    import importlib\n"
                      "    importlib.import_module('transformers.models')\n")
    assert [m for _, m in imports_of(sample)] == ["os", "torch", "importlib", "transformers"]
