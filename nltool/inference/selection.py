"""Which backend runs an artifact at which precision: ``--backend`` and ``--precision``.

The decision (:func:`choose_backend`) is a pure function of the artifact, the options, what is
installed and what the machine offers, so every rule is tested on a CPU machine; the facts it
needs are cheap to gather (:func:`describe_artifact` reads an ONNX file's metadata without loading
it; nothing here imports torch or a runtime).

Precision ``auto`` is the artifact's own: FP32 for checkpoints and FP32 ONNX, INT8 for an INT8
ONNX or IR, the engine's for a TensorRT plan. A lower precision changes masks, so it is never
chosen silently; bf16 and INT8 are one option away and their mask agreement with FP32 is in
docs/performance.md. Backend ``auto`` is the fastest backend installed that runs the artifact at
that precision on the device, in the order of :data:`PREFERENCE` (measured: docs/performance.md).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

from nltool.errors import BackendError
from nltool.inference.config import PRECISIONS, Precision
from nltool.optional import available

BackendName = Literal["auto", "torch", "onnxruntime", "openvino", "tensorrt"]
BACKENDS: tuple[str, ...] = get_args(BackendName)
PrecisionOption = Literal["auto", Precision]
"""``--precision``: auto (the artifact's own) or a precision."""
PRECISION_OPTIONS: tuple[str, ...] = ("auto", *PRECISIONS)
ArtifactKind = Literal["checkpoint", "onnx", "openvino", "engine"]
DeviceType = Literal["cpu", "cuda"]
DEVICE_TYPES: tuple[DeviceType, ...] = ("cpu", "cuda")
NATIVE_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})
"""CPU flags (``/proc/cpuinfo``) of native bf16: AVX512-BF16 or AMX."""

CHECKPOINT_SUFFIXES = (".pt", ".pth", ".th")
ONNX_SUFFIXES = (".onnx",)
OPENVINO_SUFFIXES = (".xml",)
ENGINE_SUFFIXES = (".plan", ".engine")
KIND_BY_SUFFIX: dict[str, ArtifactKind] = {
    **dict.fromkeys(CHECKPOINT_SUFFIXES, "checkpoint"), **dict.fromkeys(ONNX_SUFFIXES, "onnx"),
    **dict.fromkeys(OPENVINO_SUFFIXES, "openvino"), **dict.fromkeys(ENGINE_SUFFIXES, "engine"),
}
MODULES: dict[str, str] = {"torch": "torch", "onnxruntime": "onnxruntime", "openvino": "openvino",
                           "tensorrt": "tensorrt"}
"""The module each backend needs (``available`` checks it without importing it)."""
INSTALL: dict[str, str] = {"torch": "pip install nltool", "onnxruntime": "pip install 'nltool[cpu]'",
                           "openvino": "pip install 'nltool[openvino]'",
                           "tensorrt": "pip install 'nltool[trt]' on a CUDA host"}


@dataclass(frozen=True)
class Artifact:
    """A model file as the choice sees it: its kind and the precision it was exported at."""

    path: Path
    kind: ArtifactKind
    precision: str
    """fp32, int8 (an INT8 ONNX or IR), or an engine's fp32/fp16/int8."""


@dataclass(frozen=True)
class Capability:
    """One thing a backend can do: run this kind of artifact, exported at ``source``, at ``precision`` on ``device``."""

    backend: str
    kind: ArtifactKind
    source: str
    precision: Precision
    device: str


TENSORRT_ENGINES: tuple[Precision, ...] = ("fp32", "fp16", "int8")
"""The precisions of the TensorRT engines ``nltool export --trt`` builds (each runs at its own)."""


def _capabilities() -> tuple[Capability, ...]:
    rows = []
    for device in DEVICE_TYPES:
        rows += [Capability("torch", "checkpoint", "fp32", "fp32", device),
                 Capability("torch", "checkpoint", "fp32", "bf16", device),
                 Capability("onnxruntime", "onnx", "fp32", "fp32", device),
                 Capability("onnxruntime", "onnx", "int8", "int8", device)]
    rows += [Capability("torch", "checkpoint", "fp32", "fp16", "cuda"),
             Capability("openvino", "onnx", "fp32", "fp32", "cpu"),
             Capability("openvino", "onnx", "fp32", "bf16", "cpu"),
             Capability("openvino", "openvino", "fp32", "fp32", "cpu"),
             Capability("openvino", "openvino", "fp32", "bf16", "cpu"),
             Capability("openvino", "openvino", "int8", "int8", "cpu"),
             *(Capability("tensorrt", "engine", p, p, "cuda") for p in TENSORRT_ENGINES)]
    return tuple(rows)


CAPABILITIES = _capabilities()
"""Every (backend, artifact, precision, device) combination nltool runs."""


def backend_precisions(backend: str) -> tuple[Precision, ...]:
    """The precisions ``backend`` runs at (on some artifact and device), in :data:`CAPABILITIES` order."""
    return tuple(dict.fromkeys(row.precision for row in CAPABILITIES if row.backend == backend))


PREFERENCE: dict[DeviceType, tuple[str, ...]] = {
    "cpu": ("openvino", "onnxruntime", "torch"),
    "cuda": ("tensorrt", "onnxruntime", "torch"),
}
"""Fastest first (docs/performance.md): on a CPU OpenVINO beats onnxruntime, which beats eager PyTorch."""


@dataclass(frozen=True)
class BackendChoice:
    """What runs the artifact, at which precision, and why (printed for the user)."""

    backend: str
    precision: str
    device: DeviceType
    reason: str

    def summary(self, artifact: Path) -> str:
        """One line for the user: ``m.onnx: openvino bf16 on cpu (...)``."""
        return f"{artifact.name}: {self.backend} {self.precision} on {self.device} ({self.reason})"


def artifact_kind(path: Path) -> ArtifactKind:
    """The kind of model file, from its suffix (or a clear error listing the known ones)."""
    kind = KIND_BY_SUFFIX.get(path.suffix.lower())
    if kind is None:
        raise BackendError(f"cannot tell which backend runs {path}: expected a file ending in "
                           f"{', '.join(KIND_BY_SUFFIX)}")
    return kind


def describe_artifact(path: str | os.PathLike[str]) -> Artifact:
    """The artifact's kind and export precision, read cheaply (ONNX metadata; IR and plan names)."""
    path = Path(path)
    if not path.exists():
        raise BackendError(f"model artifact not found: {path}")
    kind = artifact_kind(path)
    precision = "fp32"
    if kind == "onnx":
        from nltool.inference.onnx_metadata import read_onnx_metadata

        precision = "int8" if read_onnx_metadata(path).get("quantization", "").startswith("int8") else "fp32"
    elif kind in ("openvino", "engine"):
        precision = next((p for p in ("int8", "fp16") if p in path.stem.lower().split(".")[-1].split("-")), "fp32")
    return Artifact(path, kind, precision)


def check_names(backend: str, precision: str) -> None:
    """``--backend`` and ``--precision`` are names this nltool knows."""
    if backend not in BACKENDS:
        raise BackendError(f"--backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if precision not in PRECISION_OPTIONS:
        raise BackendError(f"--precision must be one of {', '.join(PRECISION_OPTIONS)}, got {precision!r}")


def runnable_somewhere(artifact: Artifact, backend: str, precision: str, *, compile: bool = False) -> None:
    """Whether some machine could run ``artifact`` with these options (a CPU or a CUDA host, every
    backend installed): what ``nltool package`` checks before it writes an archive for other machines."""
    problems = []
    for device in DEVICE_TYPES:
        try:
            choose_backend(artifact, backend, precision, device=device, installed=frozenset(BACKENDS), bf16_cpu=True,
                           compile=compile)
            return
        except BackendError as exc:
            problems.append(str(exc))
    raise BackendError(problems[0])


def choose_backend(artifact: Artifact, backend: str = "auto", precision: str = "auto", *, device: DeviceType,
                   installed: frozenset[str], bf16_cpu: bool, compile: bool = False) -> BackendChoice:
    """The backend and precision for ``artifact`` given the options, the device type, the backends
    ``installed`` and whether the CPU computes bf16 natively (AVX512-BF16 or AMX). ``compile``
    (``torch.compile``) needs a checkpoint, which only the torch backend runs.

    Errors say what to do instead: another backend or precision, an extra to install, an export step.
    """
    check_names(backend, precision)
    if compile and artifact.kind != "checkpoint":
        raise BackendError(f"--compile applies to checkpoints (the torch backend), not {artifact.path.name}")
    wanted = artifact.precision if precision == "auto" else precision
    able = [c for c in CAPABILITIES if c.kind == artifact.kind and c.source == artifact.precision
            and c.precision == wanted and c.device == device]
    if not able:
        raise BackendError(_no_capability(artifact, wanted, device))
    if wanted == "bf16" and device == "cpu" and not bf16_cpu:
        raise BackendError("--precision bf16 needs a CPU with native bf16 (AVX512-BF16 or AMX); this one has "
                           "neither, so bf16 would be emulated and slower than fp32: use --precision fp32")
    names = {c.backend for c in able}
    if backend != "auto":
        if backend not in names:
            raise BackendError(f"--backend {backend} cannot run {artifact.path.name} ({artifact.kind}, "
                               f"{artifact.precision}) at {wanted} on {device}: use --backend "
                               f"{' or '.join(sorted(names))}")
        if backend not in installed:
            raise BackendError(f"--backend {backend} is not installed: {INSTALL[backend]}")
        return BackendChoice(backend, wanted, device, "as asked")
    ranked = [name for name in PREFERENCE[device] if name in names]
    for index, name in enumerate(ranked):
        if name in installed:
            note = f"; {ranked[0]} would be faster: {INSTALL[ranked[0]]}" if index else ""
            return BackendChoice(name, wanted, device, f"auto: the fastest installed for this artifact{note}")
    raise BackendError(f"no backend that runs {artifact.path.name} at {wanted} on {device} is installed: "
                       f"{INSTALL[ranked[0]]}")


def _no_capability(artifact: Artifact, wanted: str, device: str) -> str:
    """Why nothing runs ``artifact`` at ``wanted`` on ``device``, and what to do."""
    name = artifact.path.name
    if artifact.kind == "engine" and device == "cpu":
        return f"{name} is a TensorRT engine: it runs on a CUDA GPU only; on a CPU use the ONNX model"
    if wanted == "int8" and artifact.precision != "int8":
        return (f"{name} is {artifact.precision}; INT8 needs an INT8 artifact: nltool export --int8 --calib DIR "
                f"writes model.int8.onnx, then pass --model model.int8.onnx")
    if artifact.precision == "int8" and wanted != "int8":
        return f"{name} is an INT8 model; it runs at int8 only (use the FP32 model for {wanted})"
    if wanted == "fp16" and device == "cpu":
        return "fp16 runs on CUDA GPUs only; on a CPU use --precision bf16 or fp32"
    if artifact.kind == "engine":
        return f"{name} is a {artifact.precision} TensorRT engine; build a {wanted} engine with nltool export --trt"
    if wanted == "bf16" and device == "cuda":
        return f"bf16 of {name} on a GPU runs from a checkpoint (--backend torch); use fp16 or a TensorRT engine"
    return f"no backend runs {name} ({artifact.kind}, {artifact.precision}) at {wanted} on {device}"


def auto_device_type(kind: ArtifactKind) -> DeviceType:
    """What ``--device auto`` means for this kind of artifact: engines run on a GPU, OpenVINO on the
    CPU; checkpoints and ONNX (with onnxruntime-gpu installed) on a GPU when torch sees one. A CPU
    install decides without importing torch."""
    if kind == "engine":
        return "cuda"
    if kind == "openvino" or (kind == "onnx" and not _gpu_onnxruntime()):
        return "cpu"
    from nltool.devices import visible_cuda

    return "cuda" if visible_cuda(need_current=False)[0] else "cpu"


def _gpu_onnxruntime() -> bool:
    """Whether the onnxruntime installed is the GPU build (its distribution is onnxruntime-gpu)."""
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        distribution("onnxruntime-gpu")
    except PackageNotFoundError:
        return False
    return True


def device_type(device: str, kind: ArtifactKind) -> DeviceType:
    """``--device`` as the choice needs it: cpu or cuda (``auto`` by :func:`auto_device_type`)."""
    option = device.strip()
    if option == "auto":
        return auto_device_type(kind)
    return "cuda" if option.startswith("cuda") else "cpu"


def installed_backends() -> frozenset[str]:
    """The backends whose libraries are installed here (found, not imported)."""
    return frozenset(name for name, module in MODULES.items() if available(module))


def cpu_has_native_bf16(cpuinfo: str | None = None) -> bool:
    """Whether the CPU computes bf16 natively: the ``avx512_bf16`` or ``amx_bf16`` flag in
    ``/proc/cpuinfo`` (Linux; elsewhere False, which only means bf16 must be asked for elsewhere)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return False
    flags = next((line.split(":", 1)[1].split() for line in cpuinfo.splitlines() if line.startswith("flags")), [])
    return not NATIVE_BF16_FLAGS.isdisjoint(flags)
