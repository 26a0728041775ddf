"""The PyTorch reference every artifact's parity is measured against: where it runs, with which
TF32 switches, and on a copy of the model so that the exported model stays on the CPU.

TF32 is off for the reference: PyTorch allows TF32 in cuDNN convolutions by default, TensorRT's
FP32 engines are built without it, and FP32 parity at 1e-4 cannot hold against a TF32 reference.
TensorRT engines are built and run on the reference's GPU, or on the current GPU when the
reference runs on the CPU.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

from nltool.devices import TF32, TF32_OFF, Device, choose_device
from nltool.inference.backends.torch_backend import TorchBackend
from nltool.models import NLLinkNet


@dataclass(frozen=True)
class ParitySetup:
    """Where the reference and the TensorRT engines run, and the reference's TF32 switches."""

    reference: Device
    engine: Device | None
    tf32: TF32


def parity_setup(device: str, *, trt: bool, cuda_count: int, current: int) -> ParitySetup:
    """The setup for ``--device device`` (``cpu``, ``cuda``, ``cuda:N``) with ``cuda_count`` GPUs
    visible and GPU ``current`` current; ``engine`` is None without TensorRT."""
    reference = choose_device(device, cuda_count=cuda_count, current=current)
    engine = None
    if trt:
        engine = reference if reference.type == "cuda" else choose_device("cuda", cuda_count=cuda_count,
                                                                          current=current)
    return ParitySetup(reference=reference, engine=engine, tf32=TF32_OFF)


def reference_backend(model: NLLinkNet, setup: ParitySetup, source: str | None = None) -> TorchBackend:
    """The reference on ``setup.reference``, built from a copy: ``model`` itself is never moved,
    so torch.export traces it with CPU weights and a CPU example input."""
    return TorchBackend(copy.deepcopy(model), device=str(setup.reference), source=source)
