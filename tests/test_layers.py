"""The packages form layers, as README's Architecture lists them: each imports only those above it
there (at module level or inside a function), so a primitive never pulls in what is built on it."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def readme_layers() -> list[str]:
    """The package names of README's Architecture block, in its order."""
    block = re.search(r"## Architecture.*?```\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert block, "README.md has no Architecture block"
    names: list[str] = []
    for line in block.group(1).splitlines():
        if line and not line[0].isspace():
            names += [name.strip().rstrip("/") for name in re.split(r"\s{2,}", line)[0].split(",")]
    return names


def ragkit_imports(path: Path) -> list[tuple[int, str]]:
    """(line, package) for each `ragkit.<package>` that `path` imports."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        modules = []
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules = [node.module]
        elif isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        found += [(node.lineno, m.split(".")[1]) for m in modules if m.startswith("ragkit.")]
    return found


def test_every_package_imports_only_the_layers_above_it():
    order = {name: i for i, name in enumerate(readme_layers())}
    packages = {
        p.stem
        for p in (ROOT / "ragkit").iterdir()
        if (p.suffix == ".py" or (p / "__init__.py").exists()) and not p.name.startswith("_")
    }
    assert packages == set(order), "README's Architecture lists exactly the packages"
    back = [
        f"{path.relative_to(ROOT)}:{line} imports ragkit.{other}"
        for path in (ROOT / "ragkit").rglob("*.py")
        if path.parent != ROOT / "ragkit" or path.stem != "__init__"
        for line, other in ragkit_imports(path)
        if order[other] > order[path.relative_to(ROOT / "ragkit").parts[0].removesuffix(".py")]
    ]
    assert back == []


def test_the_check_sees_a_back_arrow(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from ragkit.index.retriever import Retriever\n")
    assert ragkit_imports(module) == [(2, "index")]
