"""One import root and one-way layers: core <- stages (training, export, serving) <- application.

The rules are read off the source, so the next change cannot quietly undo them: the core imports
no stage and not the application; a stage imports the core and itself only; entry points
(``__main__.py``) and ``nltool.app`` may import anything.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

REPO = Path(__file__).resolve().parents[2]
STAGES = ("nltool.training", "nltool.export", "nltool.serving")
PROJECT_FOLDERS = ("nltool", "training", "export", "serving", "tests", "benchmarks")


def _setuptools_config() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]


def source_modules() -> dict[str, Path]:
    """Installed module name -> source file, from pyproject's package list and package-dir map."""
    config = _setuptools_config()
    package_dir: dict[str, str] = config.get("package-dir", {})
    modules: dict[str, Path] = {}
    for package in config["packages"]:
        mapped = [p for p in package_dir if package == p or package.startswith(p + ".")]
        prefix = max(mapped, key=len, default="")
        root = (package_dir[prefix] + package[len(prefix):] if prefix else package).replace(".", "/")
        for path in sorted((REPO / root).glob("*.py")):
            name = package if path.stem == "__init__" else f"{package}.{path.stem}"
            modules[name] = path
    return modules


def layer(module: str) -> str:
    """``core``, a stage's name, or ``app`` (the CLI, the demo, and every ``__main__`` entry point)."""
    if module.startswith("nltool.app") or module.endswith(".__main__") or module == "nltool.__main__":
        return "app"
    for stage in STAGES:
        if module == stage or module.startswith(stage + "."):
            return stage
    return "core"


def imported_modules(module: str, path: Path) -> set[str]:
    """Every nltool module ``path`` imports, at module level or inside functions, relative ones resolved."""
    package = module if path.stem == "__init__" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return {name for name in found if name == "nltool" or name.startswith("nltool.")}


def allowed(importer: str, imported: str) -> bool:
    """The layer rule for one import."""
    source, target = layer(importer), layer(imported)
    if source == "app":
        return True
    if source == "core":
        return target == "core"
    return target in ("core", source)


def test_every_package_folder_is_installed() -> None:
    roots = ("nltool", "training", "export", "serving")
    folders = {p.parent for root in roots for p in (REPO / root).rglob("__init__.py")}
    installed = {path.parent for name, path in source_modules().items() if path.stem == "__init__"}
    assert folders == installed, "pyproject.toml [tool.setuptools] packages must list every package folder"


def test_imports_point_one_way() -> None:
    modules = source_modules()
    assert len(modules) > 50 and {layer(m) for m in modules} == {"core", "app", *STAGES}
    wrong = sorted(f"{m} ({layer(m)}) imports {i} ({layer(i)})" for m, path in modules.items()
                   for i in imported_modules(m, path) if not allowed(m, i))
    assert not wrong, "layer violations:\n" + "\n".join(wrong)


def test_no_top_level_stage_imports_anywhere() -> None:
    """Source, tests and benchmarks name the stages under the one import root."""
    offenders = []
    # The project's own folders only: a user's virtual environment in the clone (any name) is not source.
    for path in (f for folder in PROJECT_FOLDERS for f in (REPO / folder).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else [])
            offenders += [f"{path.relative_to(REPO)}: {n}" for n in names if n.split(".")[0] in
                          ("training", "export", "serving")]
    assert not offenders, offenders


@pytest.mark.parametrize("rule", [("nltool.models.factory", "nltool.training.trainer", False),
                                  ("nltool.export.parity", "nltool.serving.client", False),
                                  ("nltool.serving.handler", "nltool.app.cli", False),
                                  ("nltool.training.__main__", "nltool.app.cli", True),
                                  ("nltool.export.artifacts", "nltool.inference", True)])
def test_the_rule_itself(rule: tuple[str, str, bool]) -> None:
    importer, imported, ok = rule
    assert allowed(importer, imported) is ok


def test_only_nltool_is_importable_at_the_top_level(tmp_path: Path) -> None:
    """From a folder other than the checkout, the stages exist only as nltool.training etc."""
    code = ("import importlib, importlib.util\n"
            "for name in ('training', 'export', 'serving'):\n"
            "    assert importlib.util.find_spec(name) is None, name\n"
            "for name in ('nltool.training', 'nltool.export', 'nltool.serving'):\n"
            "    importlib.import_module(name)\n"
            "print('ok')")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_python_dash_m_nltool_works_like_nltool(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "nltool", "--version"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.startswith("nltool "), done.stderr
