"""Python stubs for TorchServe's gRPC inference API, compiled from the shipped ``inference.proto``.

The stubs are generated with grpcio-tools on first use (into a per-user cache keyed by the proto
and the protobuf/grpcio-tools versions) rather than checked in: generated code is tied to the
protobuf runtime that compiled it, and this way it always matches the installed one.
``google/rpc/status.proto``, which the proto imports, comes compiled from googleapis-common-protos.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import shutil
import sys
import tempfile
from importlib import metadata
from pathlib import Path
from types import ModuleType

from nltool.errors import NltoolError
from nltool.optional import require

PROTO = Path(__file__).with_name("proto") / "inference.proto"
PACKAGE = "nltool_torchserve_grpc"
"""The import package the stubs are generated into (a name nothing else uses)."""


class StubsError(NltoolError):
    """The gRPC stubs could not be made (grpcio-tools or googleapis-common-protos missing)."""


def cache_dir() -> Path:
    """``$NLTOOL_CACHE`` or ``$XDG_CACHE_HOME/nltool`` (default ``~/.cache/nltool``)."""
    root = os.environ.get("NLTOOL_CACHE") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "nltool"
    return Path(root)


def _stub_key() -> str:
    versions = f"{metadata.version('protobuf')}/{metadata.version('grpcio-tools')}"
    return hashlib.sha256(PROTO.read_bytes() + versions.encode()).hexdigest()[:16]


def _googleapis_root() -> Path:
    """The site folder holding googleapis-common-protos' ``google/rpc/status.proto``."""
    import google.rpc.status_pb2 as status

    return Path(status.__file__).parents[2]


def _compile(dest: Path) -> None:
    """Run protoc (grpcio-tools) on the proto into ``dest/PACKAGE`` via a temporary folder, so a
    half-written cache is never seen (a concurrent process that wins the rename is fine too)."""
    from grpc_tools import protoc

    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest.parent) as tmp:
        source_root, out = Path(tmp) / "src", Path(tmp) / "out"
        (source_root / PACKAGE).mkdir(parents=True)
        (out / PACKAGE).mkdir(parents=True)
        shutil.copyfile(PROTO, source_root / PACKAGE / "inference.proto")
        well_known = Path(protoc.__file__).with_name("_proto")
        code = protoc.main(["grpc_tools.protoc", f"-I{source_root}", f"-I{well_known}", f"-I{_googleapis_root()}",
                            f"--python_out={out}", f"--grpc_python_out={out}", f"{PACKAGE}/inference.proto"])
        if code != 0:
            raise StubsError(f"protoc failed (exit {code}) on {PROTO}")
        (out / PACKAGE / "__init__.py").write_text("")
        try:
            out.rename(dest)
        except OSError:
            if not (dest / PACKAGE / "inference_pb2_grpc.py").exists():
                raise


def load_stubs() -> tuple[ModuleType, ModuleType]:
    """``(inference_pb2, inference_pb2_grpc)``, compiling them on first use."""
    require("grpc", "the gRPC client")
    require("google.rpc.status_pb2", "the gRPC client")  # the generated code imports it
    try:
        dest = cache_dir() / "grpc" / _stub_key()
    except metadata.PackageNotFoundError as exc:
        raise StubsError("the gRPC client needs grpcio-tools: pip install 'nltool[client]'") from exc
    if not (dest / PACKAGE / "inference_pb2_grpc.py").exists():
        _compile(dest)
    if str(dest) not in sys.path:
        sys.path.insert(0, str(dest))
    return (importlib.import_module(f"{PACKAGE}.inference_pb2"),
            importlib.import_module(f"{PACKAGE}.inference_pb2_grpc"))
