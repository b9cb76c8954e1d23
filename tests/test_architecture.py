"""The package's layout holds: imports go down the data flow, and each idea has one home."""

import ast
from pathlib import Path

import pytest

import upscale
from upscale.learn.nets import NETS

PACKAGE = Path(upscale.__file__).parent

LAYERS = {
    "errors": 0,
    "options": 0,
    "schema": 1,
    "progress": 1,
    "grid": 2,
    "io": 3,
    "towers": 4,
    "drivers": 4,
    "learn": 5,
    "engine": 6,
    "budgets": 7,
    "report": 8,
    "demo_region": 8,
    "bench": 9,
    "api": 10,
    "cli": 11,
    "__init__": 12,
}
"""Each top-level module or subpackage and its layer: a module imports from its own part and
lower layers only (towers and drivers, side by side, not from each other)."""


def modules():
    return sorted(PACKAGE.rglob("*.py"))


def imported_parts(tree: ast.Module):
    """Yield (line, top-level part of upscale) for each import of upscale in a module."""
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("upscale"):
            names = node.module.split(".")
            for part in names[1:2] or [alias.name for alias in node.names]:
                yield node.lineno, part
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("upscale."):
                    yield node.lineno, alias.name.split(".")[1]


def test_every_part_has_a_layer():
    parts = {
        p.name.removesuffix(".py")
        for p in PACKAGE.iterdir()
        if p.suffix == ".py" or (p.is_dir() and (p / "__init__.py").exists())
    }
    assert parts - {"__main__"} <= set(LAYERS)


def test_imports_go_down_the_layers():
    upward = []
    for path in modules():
        part = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
        for line, target in imported_parts(ast.parse(path.read_text())):
            if target == part or target not in LAYERS:
                continue
            if LAYERS[target] >= LAYERS[part] and part not in ("errors", "options"):
                upward.append(f"{path.relative_to(PACKAGE)}:{line} imports upscale.{target}")
    assert not upward


def test_the_cli_imports_only_the_api():
    tree = ast.parse((PACKAGE / "cli.py").read_text())
    assert {part for _, part in imported_parts(tree)} <= {"api", "__version__"}


def test_few_modules_at_the_top():
    assert len([p for p in PACKAGE.glob("*.py") if p.name != "__init__.py"]) <= 14


@pytest.mark.parametrize("name", sorted(NETS))
def test_architecture_names_only_in_the_registry(name):
    spelled = []
    for path in modules():
        if "nets" in path.relative_to(PACKAGE).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and node.value == name:
                spelled.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    assert not spelled
