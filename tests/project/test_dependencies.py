"""pyproject.toml's extras add what the core lacks: no core dependency is repeated in an extra."""

from __future__ import annotations

from pathlib import Path

import tomllib
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]

NARROWED = {("gpu", "torch"), ("trt", "torch")}
"""(extra, dependency) pairs that narrow the core range on purpose: the CUDA 13 builds need torch>=2.14."""


def requirement_name(requirement: str) -> str:
    """The normalized project name of a requirement string (PEP 503; packaging is pytest's dependency)."""
    return canonicalize_name(Requirement(requirement).name)


def test_no_core_dependency_is_repeated_in_an_extra() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    core = {requirement_name(r) for r in project["dependencies"]}
    repeated = sorted((extra, name) for extra, requirements in project["optional-dependencies"].items()
                      for name in map(requirement_name, requirements) if name in core)
    assert [pair for pair in repeated if pair not in NARROWED] == [], "core dependencies repeated in extras"
    assert set(repeated) == NARROWED, "NARROWED lists a pair pyproject.toml no longer has"


def test_requirement_names_are_normalized() -> None:
    assert requirement_name("PyYAML>=6.0") == "pyyaml"
    assert requirement_name("ray[data]>=2.40") == "ray"
    assert requirement_name("tomli>=2.0; python_version < '3.11'") == "tomli"
    assert requirement_name("Torch_Model.Archiver==0.12.*") == "torch-model-archiver"
