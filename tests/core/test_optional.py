"""A missing optional dependency is one line naming the extra to install, never a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from nltool.errors import NltoolError
from nltool.optional import MissingDependencyError, available, install_hint, require


def test_require_names_the_extra() -> None:
    with pytest.raises(MissingDependencyError, match=r"the REST client needs nltool_no_such_module") as info:
        require("nltool_no_such_module", "the REST client")
    assert isinstance(info.value, NltoolError) and isinstance(info.value, ImportError)
    assert require("json", "reading JSON") is json


@pytest.mark.parametrize(("module", "hint"), [
    ("requests", "pip install 'nltool[client]'"),
    ("google.rpc.status_pb2", "pip install 'nltool[client]'"),
    ("onnxruntime", "pip install 'nltool[cpu]' (or 'nltool[gpu]' for onnxruntime-gpu on a CUDA host)"),
    ("tensorrt", "pip install 'nltool[trt]' on a CUDA host"),
    ("skimage", "pip install 'nltool[vector]'"),
    ("rasterio", "pip install 'nltool[geo]'"),
    ("ray.data", "pip install 'nltool[ray]'"),
])
def test_every_optional_module_has_its_extra(module: str, hint: str) -> None:
    assert install_hint(module) == hint


def test_available_does_not_import() -> None:
    assert available("json") and not available("nltool_no_such_module")


def _cli_without(module: str, args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run the CLI in a fresh interpreter in which ``module`` cannot be imported."""
    code = (f"import sys; sys.modules[{module!r}] = None; sys.argv = ['nltool', *{args!r}]\n"
            "from nltool.app.cli import main; main()")
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_client_without_the_client_extra_says_what_to_install(tmp_path: Path) -> None:
    (tmp_path / "scene.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (tmp_path / "key_file.json").write_text(json.dumps({"inference": {"key": "k"}}))
    done = _cli_without("requests", ["client", "scene.png", "--out", "mask.png"], tmp_path)
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: the REST client needs requests")
    assert lines[0].endswith("pip install 'nltool[client]'")


def test_vectorize_without_the_vector_extra_says_what_to_install(tmp_path: Path) -> None:
    from PIL import Image

    Image.new("L", (64, 64)).save(tmp_path / "mask.png")
    done = _cli_without("skimage", ["vectorize", "mask.png", "--out", "roads.geojson"], tmp_path)
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "needs skimage" in lines[0], lines
    assert lines[0].endswith("pip install 'nltool[vector]'") and not (tmp_path / "roads.geojson").exists()
