"""The TensorRT code: importable without TensorRT, and every TensorRT name it uses exists.

What this proves: names, not behaviour. The ``tensorrt-cu13-bindings`` wheel installs here, but
its extension cannot load without TensorRT's libraries (and there is no GPU), so the test reads
the names the extension binds out of the shared library's bytes and checks that every
attribute our code takes from TensorRT objects is among them. Building and running engines is
untested on this project's machines.
"""

from __future__ import annotations

import ast
import importlib
import importlib.metadata
from pathlib import Path

import pytest
from conftest import REPO

TRT_MODULES = [REPO / "nltool" / "inference" / "backends" / "tensorrt_backend.py",
               REPO / "export" / "tensorrt_build.py"]
# Local names that hold TensorRT objects in those modules (a convention the modules keep).
TRT_OBJECTS = {"trt", "builder", "network", "parser", "config", "shape_profile", "cache", "logger"}
TRT_SELF_ATTRIBUTES = {"_trt", "engine", "context", "_runtime", "_logger"}
REMOVED_IN_TRT_10_OR_11 = {"execute_v2", "execute_async_v2", "build_engine", "max_workspace_size", "EXPLICIT_BATCH",
                           "int8_calibrator", "get_binding_index", "num_bindings", "IInt8EntropyCalibrator2"}


def _chain(node: ast.expr) -> tuple[ast.expr, list[str]]:
    """The root of ``a.b(c).d`` (``a``) and the attribute names along it (``b``, ``d``)."""
    attrs: list[str] = []
    while isinstance(node, (ast.Attribute, ast.Call)):
        if isinstance(node, ast.Attribute):
            attrs.append(node.attr)
            node = node.value
        else:
            node = node.func
    return node, attrs[::-1]


def _tensorrt_attributes(path: Path) -> set[str]:
    """Attributes taken from TensorRT objects: trt.X.Y, builder.X(...).Y, self.engine.X, ..."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.Attribute):
            continue
        root, attrs = _chain(node)
        if isinstance(root, ast.Name) and root.id in TRT_OBJECTS:
            names.update(attrs)
        elif isinstance(root, ast.Name) and root.id == "self" and attrs[0] in TRT_SELF_ATTRIBUTES:
            names.update(attrs[1:])
    return names - {"__version__"}


def _bindings_library() -> bytes:
    try:
        files = importlib.metadata.files("tensorrt-cu13-bindings") or []
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("the tensorrt-cu13-bindings wheel is not installed (pip install tensorrt-cu13-bindings)")
    library = next((f for f in files if f.name.startswith("tensorrt") and f.name.endswith(".so")), None)
    if library is None:
        pytest.skip("the tensorrt-cu13-bindings wheel has no tensorrt*.so to read")
    return Path(library.locate()).read_bytes()


def test_modules_import_without_tensorrt() -> None:
    for module in ("nltool.inference.backends.tensorrt_backend", "nltool.export.tensorrt_build"):
        importlib.import_module(module)


def test_every_tensorrt_name_the_code_uses_is_bound() -> None:
    library = _bindings_library()
    used = set().union(*(_tensorrt_attributes(path) for path in TRT_MODULES))
    assert {"execute_async_v3", "set_input_shape", "build_serialized_network", "STRONGLY_TYPED"} <= used
    missing = sorted(name for name in used if name.encode() not in library)
    assert not missing, f"not bound by TensorRT {importlib.metadata.version('tensorrt-cu13-bindings')}: {missing}"


def test_no_removed_tensorrt_calls() -> None:
    used = set().union(*(_tensorrt_attributes(path) for path in TRT_MODULES))
    assert not used & REMOVED_IN_TRT_10_OR_11
