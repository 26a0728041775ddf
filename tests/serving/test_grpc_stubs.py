"""The gRPC stubs: the shipped proto is TorchServe's own, and it compiles into a fresh cache."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from nltool.serving.grpc_stubs import PACKAGE, PROTO


def test_shipped_proto_is_the_installed_torchserves_own() -> None:
    ts = pytest.importorskip("ts", reason="TorchServe (the [serve] extra) is not installed")
    jar = Path(ts.__file__).parent / "frontend" / "model-server.jar"
    assert zipfile.ZipFile(jar).read("proto/inference.proto") == PROTO.read_bytes()


def test_stubs_compile_into_an_empty_cache_and_are_reused(tmp_path: Path) -> None:
    pytest.importorskip("grpc_tools", reason="grpcio-tools (the [client] extra) is not installed")
    code = ("from nltool.serving.grpc_stubs import load_stubs; m, s = load_stubs(); "
            "print(m.PredictionsRequest(model_name='x', input={'data': b'1'}).model_name, s.InferenceAPIsServiceStub)")
    for _ in range(2):  # the second run finds the cache
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                              env={"NLTOOL_CACHE": str(tmp_path), "PATH": "/usr/bin:/bin"}, check=False)
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("x <class")
    generated = list(tmp_path.glob(f"grpc/*/{PACKAGE}/inference_pb2_grpc.py"))
    assert len(generated) == 1
    assert not [p for p in (tmp_path / "grpc").iterdir() if p.name.startswith("tmp")]  # no leftovers
