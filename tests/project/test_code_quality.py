"""ruff and mypy, configured in pyproject.toml, pass on the tree (run by the README's test command)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

REPO = Path(__file__).resolve().parents[2]


def _tool(name: str) -> str:
    """The tool beside this Python (the [dev] extra installs it), or skip naming the extra."""
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed: pip install -e '.[dev]'")
    return found


def installed_tree(dest: Path) -> Path:
    """The package as it installs (``nltool/`` with ``training/``, ``export/``, ``serving/`` inside),
    made of links to the checkout: mypy does not follow setuptools' editable-install finder."""
    package_dir: dict[str, str] = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-dir"]
    root = dest / "nltool"
    root.mkdir(parents=True)
    for entry in (REPO / "nltool").iterdir():
        if entry.name != "__pycache__":
            (root / entry.name).symlink_to(entry)
    for package, folder in package_dir.items():
        (dest / package.replace(".", "/")).symlink_to(REPO / folder)
    return dest


def test_ruff_passes() -> None:
    done = subprocess.run([_tool("ruff"), "check", "--no-cache", "."], cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.slow
def test_mypy_passes(tmp_path: Path) -> None:
    tree = installed_tree(tmp_path / "tree")
    done = subprocess.run([_tool("mypy"), "--config-file", str(REPO / "pyproject.toml"), "--cache-dir",
                           str(tmp_path / "cache"), "-p", "nltool"], cwd=tree, capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
