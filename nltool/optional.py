"""The one way nltool imports an optional dependency: a missing extra is one line naming what to install.

Heavy and optional libraries (onnxruntime, TensorRT, rasterio, TorchServe's clients, ...) are
imported inside the function that needs them, through :func:`require`, so ``nltool --help`` stays
fast and a user without an extra reads ``pip install 'nltool[client]'`` instead of a traceback.
"""

from __future__ import annotations

import importlib
from importlib.util import find_spec
from types import ModuleType

from nltool.errors import NltoolError

EXTRAS: dict[str, str] = {
    "onnxruntime": "cpu",
    "openvino": "openvino",
    "nncf": "openvino-int8",
    "tensorrt": "trt",
    "onnxconverter_common": "trt",
    "rasterio": "geo",
    "ray": "ray",
    "requests": "client",
    "grpc": "client",
    "grpc_tools": "client",
    "google.rpc": "client",
    "ts": "serve",
    "kserve": "kserve",
    "tritonclient": "oip-client",
    "skimage": "vector",
    "sknw": "vector",
    "scipy": "vector",
    "shapely": "vector",
    "pyproj": "vector",
    "networkx": "vector",
    "pyogrio": "vector",
}
"""Top-level module -> the extra of ``pyproject.toml`` that installs it."""

EXTRA_NOTES: dict[str, str] = {
    "cpu": " (or 'nltool[gpu]' for onnxruntime-gpu on a CUDA host)",
    "trt": " on a CUDA host",
}


class MissingDependencyError(NltoolError, ImportError):
    """An optional dependency that is not installed (or cannot load); the message names the extra."""


def install_hint(module: str) -> str:
    """``pip install 'nltool[extra]'`` for ``module`` (its extra from :data:`EXTRAS`, longest prefix first)."""
    parts = module.split(".")
    extra = next((EXTRAS[name] for name in (".".join(parts[:n]) for n in range(len(parts), 0, -1))
                  if name in EXTRAS), None)
    if extra is None:
        return f"pip install {module.split('.')[0]}"
    return f"pip install 'nltool[{extra}]'{EXTRA_NOTES.get(extra, '')}"


def require(module: str, purpose: str) -> ModuleType:
    """Import ``module`` for ``purpose`` ("running .onnx artifacts"), or raise one clear error.

    ``OSError`` counts as missing too: TensorRT's bindings install without their native libraries.
    """
    try:
        return importlib.import_module(module)
    except (ImportError, OSError) as exc:
        raise MissingDependencyError(f"{purpose} needs {module} ({exc}): {install_hint(module)}") from exc


def available(module: str) -> bool:
    """Whether ``module`` can be found, without importing it."""
    try:
        return find_spec(module) is not None
    except (ImportError, ValueError):
        return False
