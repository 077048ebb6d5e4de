"""The package's boundaries, checked: Ray only in ``distributed/``, MLflow only in
``tracking/mlflow.py``, no module over 400 lines, imports that flow one way."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "adass_ray"
MODULES = sorted(PACKAGE.rglob("*.py"))
MAX_LINES = 400
# lower layers must not import higher ones (DESIGN.md §4)
LAYERS = ["errors|progress", "configio|record", "data", "model",
          "sampling|train|search|metrics|pareto|plots", "tracking", "distributed",
          "stages|harness", "cli"]


def _imports(path: Path) -> set[str]:
    """Every module name ``path`` imports, at any depth (function-level imports included)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _rel(path: Path) -> str:
    return path.relative_to(PACKAGE).as_posix()


def test_the_package_has_modules() -> None:
    assert len(MODULES) > 40


@pytest.mark.parametrize("library, allowed", [("ray", "distributed/"),
                                              ("mlflow", "tracking/mlflow.py")])
def test_only_one_room_imports_each_framework(library: str, allowed: str) -> None:
    offenders = [_rel(p) for p in MODULES if not _rel(p).startswith(allowed)
                 and any(n == library or n.startswith(library + ".") for n in _imports(p))]
    assert offenders == [], f"{library} imported outside {allowed}: {offenders}"


def test_no_module_is_over_the_limit() -> None:
    long = {_rel(p): n for p in MODULES
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert long == {}, f"modules over {MAX_LINES} lines: {long}"


def _layer(rel: str) -> int | None:
    top = rel.split("/")[0].removesuffix(".py")
    for i, group in enumerate(LAYERS):
        if top in group.split("|"):
            return i
    return None


def test_imports_flow_one_way() -> None:
    """A module never imports a package of a higher layer (``cli`` is the top)."""
    wrong = []
    for p in MODULES:
        mine = _layer(_rel(p))
        for name in _imports(p):
            if not name.startswith("adass_ray."):
                continue
            theirs = _layer(name.removeprefix("adass_ray.").replace(".", "/"))
            if mine is not None and theirs is not None and theirs > mine:
                wrong.append(f"{_rel(p)} -> {name}")
    assert wrong == [], f"imports against the layering: {wrong}"
