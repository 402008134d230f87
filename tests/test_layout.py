"""The package's shape: data flows down the stages, never back up, and the emulator stands apart.

Every module of ``segsync`` has a floor; a module may import (at run time, lazily included)
only from lower floors. Imports under ``if TYPE_CHECKING:`` are annotations, not dependencies.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parent.parent / "segsync"

#: The stages in the order the data flows: load -> spec -> plan -> render / apply -> client.
FLOORS: dict[str, int] = {
    "segsync": 0,  # the package's face: its version
    "segsync.types": 0,
    "segsync.errors": 0,
    "segsync.diff": 0,
    "segsync.fsutil": 0,
    "segsync.parallel": 0,
    "segsync.yamlfile": 1,
    "segsync.canonical": 1,
    "segsync.state": 1,
    "segsync.spec": 2,
    "segsync.importer": 5,
    "segsync.lock": 2,
    "segsync.statelog": 2,
    "segsync.statemerge": 2,
    "segsync.specerrors": 3,
    "segsync.plantypes": 3,
    "segsync.specs": 4,
    "segsync.client": 4,
    "segsync.deadline": 0,
    "segsync.apierrors": 0,
    "segsync.plancargo": 5,
    "segsync.columns": 5,
    "segsync.specwarnings": 5,
    "segsync.plan": 6,
    "segsync.refresh": 7,
    "segsync.render.common": 7,
    "segsync.render.state": 7,
    "segsync.apply.journal": 7,
    "segsync.render.machine": 8,
    "segsync.render.text": 8,
    "segsync.render.markdown": 8,
    "segsync.apply.actions": 8,
    "segsync.planfile": 9,
    "segsync.render.errors": 9,
    "segsync.render": 9,
    "segsync.apply.runner": 9,
    "segsync.apply": 10,
    "segsync.render.progress": 10,
    "segsync.render.columns": 8,
    "segsync.manager": 11,
    "segsync.cli": 12,
    "segsync.cli_ui": 11,
    "segsync.cli_state": 13,
    "segsync.cli_github": 13,
    "segsync.cli_workspace": 13,
    "segsync.github": 4,
    "segsync.config": 3,
    "segsync.__main__": 13,
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runtime_imports(path: Path) -> set[str]:
    """Every ``segsync`` module ``path`` imports at run time (lazy imports included)."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for other in child.orelse:
                    visit(other)
                continue
            if isinstance(child, ast.Import):
                found.update(a.name for a in child.names if a.name.split(".")[0] == "segsync")
            elif (
                isinstance(child, ast.ImportFrom) and child.module and child.level == 0
                and child.module.split(".")[0] == "segsync"
            ):
                found.add(child.module)
                for alias in child.names:  # `from segsync import refresh` names a module
                    name = f"{child.module}.{alias.name}"
                    if (PACKAGE.parent / (name.replace(".", "/") + ".py")).exists() or (
                        PACKAGE.parent / name.replace(".", "/")
                    ).is_dir():
                        found.add(name)
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return found


MODULES = sorted(p for p in PACKAGE.rglob("*.py") if "emulator" not in p.parts)


def test_every_module_has_a_floor() -> None:
    assert sorted(_module_name(p) for p in MODULES) == sorted(FLOORS)


@pytest.mark.parametrize("path", MODULES, ids=_module_name)
def test_imports_only_go_down(path: Path) -> None:
    name = _module_name(path)
    upward = [
        imported for imported in sorted(_runtime_imports(path))
        if imported != name and not imported.startswith("segsync.emulator")
        and FLOORS.get(imported, 99) >= FLOORS[name]
        and not (name == "segsync.cli" and imported == "segsync.emulator")
    ]
    assert upward == [], f"{name} (floor {FLOORS[name]}) imports from the same floor or above"


def test_named_rules() -> None:
    imports = {_module_name(p): _runtime_imports(p) for p in MODULES}
    assert "segsync.client" not in imports["segsync.plan"] | imports["segsync.plancargo"]
    assert "segsync.plan" not in imports["segsync.client"]
    assert not {m for m in imports["segsync.client"] if m.startswith("segsync.plan")}
    # only the command line and the manager orchestrate; the stages do not call upward
    for stage in ("segsync.plan", "segsync.refresh", "segsync.apply.runner", "segsync.specs"):
        assert "segsync.manager" not in imports[stage] and "segsync.cli" not in imports[stage]


def test_the_emulator_imports_nothing_of_segsync_but_its_version() -> None:
    for path in sorted((PACKAGE / "emulator").rglob("*.py")):
        for imported in _runtime_imports(path) | _type_checking_imports(path):
            assert imported.startswith("segsync.emulator") or imported == "segsync", (
                f"{path.name} imports {imported}"
            )
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "segsync":
                assert [a.name for a in node.names] == ["__version__"], path.name


def _type_checking_imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("segsync"):
            found.add(node.module)
    return found


def test_no_module_is_over_600_lines() -> None:
    sizes = {
        _module_name(p): len(p.read_text(encoding="utf-8").splitlines())
        for p in sorted(PACKAGE.rglob("*.py"))
    }
    assert {name: n for name, n in sizes.items() if n > 620} == {}
