"""Every third-party package the library imports is declared in pyproject.toml, and the environment is consistent."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "hf_metaopt"


def imported_top_level_names() -> dict[str, set[str]]:
    """``{top-level module name: files importing it}`` for absolute imports under hf_metaopt/ (stdlib and itself left out)."""
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / PACKAGE).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top != PACKAGE and top not in sys.stdlib_module_names:
                    found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


def normalized(distribution: str) -> str:
    return re.sub(r"[-_.]+", "-", distribution).lower()


def declared_distributions() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    return {normalized(re.match(r"[A-Za-z0-9._-]+", r).group(0)) for r in requirements}


def test_the_scan_sees_the_library_imports():
    names = imported_top_level_names()
    assert {"torch", "transformers", "huggingface_hub", "accelerate"} <= names.keys()
    assert "os" not in names and PACKAGE not in names


def test_every_imported_third_party_package_is_declared():
    providers = importlib.metadata.packages_distributions()
    declared = declared_distributions()
    undeclared = {}
    for name, files in imported_top_level_names().items():
        distributions = {normalized(d) for d in providers.get(name, [])}
        if not distributions & declared:
            undeclared[name] = (sorted(distributions) or ["<not installed>"], sorted(files))
    assert not undeclared, (
        "imported but not declared in pyproject.toml [project].dependencies "
        f"(import name: (distribution, importing files)): {undeclared}"
    )


def dependency_closure() -> set[str]:
    """hf-metaopt and every distribution it requires, directly or through another (markers evaluated, no extras)."""
    from packaging.requirements import Requirement

    seen, todo = set(), ["hf-metaopt"]
    while todo:
        name = normalized(todo.pop())
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        for text in requires:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return seen


def test_pip_check_is_clean_for_the_library_and_its_dependencies():
    """``pip check`` finds nothing wrong with hf-metaopt's dependency tree. The offline model and data
    packages are installed with ``--no-deps`` on purpose (pyproject.toml): their own unmet requirements
    are theirs, outside the tree."""
    result = subprocess.run([sys.executable, "-m", "pip", "check"], capture_output=True, text=True, timeout=120)
    closure = dependency_closure()
    assert "hf-metaopt" in closure and "transformers" in closure
    broken = [line for line in result.stdout.splitlines() if line.strip() and normalized(line.split()[0]) in closure]
    assert not broken, "\n".join(broken)
