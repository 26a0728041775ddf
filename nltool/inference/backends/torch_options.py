"""How the PyTorch backend runs a model: precision, memory format, ``torch.compile`` and its disk cache.

Every choice is a pure function of the request and the device, so it is tested on any machine and
reads in one place; :mod:`nltool.inference.backends.torch_backend` only applies the answers.
Importing this module does not import torch.

Measured on a 2-core AMD EPYC with AVX512-BF16 (no AMX), NL34 at 1024², ``benchmarks/torch_compile.py``;
the numbers are in docs/performance.md.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, MutableMapping
from pathlib import Path
from types import MappingProxyType

from nltool.cache import cache_dir
from nltool.errors import BackendError
from nltool.inference.config import Precision
from nltool.inference.selection import backend_precisions

PRECISIONS: tuple[Precision, ...] = backend_precisions("torch")
"""fp32, bf16, fp16 (CUDA only)."""

INDUCTOR_CACHE_ENV = "TORCHINDUCTOR_CACHE_DIR"
INDUCTOR_CACHE_SUBDIR = "torch-inductor"
RECOMPILE_LIMIT = 16


def autocast_dtype(precision: str, device_type: str) -> str | None:
    """The ``torch.autocast`` dtype name for ``precision`` on ``device_type``; ``None`` runs plain fp32.

    bf16 autocasts on the CPU and on CUDA; fp16 is CUDA only (CPU fp16 convolutions are slow or missing
    in oneDNN, and bf16 keeps fp32's range), so fp16 on the CPU is refused with what to use instead.
    """
    if precision not in PRECISIONS:
        raise BackendError(f"precision {precision!r} is not supported by the torch backend; "
                           f"use one of {', '.join(PRECISIONS)}")
    if precision == "fp32":
        return None
    if precision == "fp16" and device_type != "cuda":
        raise BackendError("precision fp16 needs a CUDA GPU (the CPU has no fast fp16 convolutions); "
                           "use --precision bf16 or fp32 on the CPU, or --device cuda")
    return "bfloat16" if precision == "bf16" else "float16"


def use_channels_last(device_type: str, precision: str) -> bool:
    """Whether model and input go NHWC (``torch.channels_last``).

    CPU: always (oneDNN convolutions run NHWC natively: eager fp32 1.45×, eager bf16 1.8× faster than
    NCHW at 1024²; compiled it hardly matters, inductor picks the conv layout itself). CUDA: for the half
    precisions, where cuDNN's tensor-core kernels want NHWC (PyTorch's channels_last tutorial); fp32
    stays NCHW (unmeasured here: no GPU).
    """
    return device_type == "cpu" or precision in ("bf16", "fp16")


COMPILE_OPTIONS: Mapping[str, bool] = MappingProxyType({"freezing": False})
"""Inductor options: ``freezing`` off on every device. Measured on the CPU (NL34 at 1024²): no
speed difference with it on (bf16, interleaved in one process), while the cold compile took 1.5×
and a warm start 1.6-1.9× as long, and it bypasses the AOTAutograd cache (``Cannot cache a graph
with freezing enabled``). Without it the weights are graph inputs: another checkpoint of the
same arch reuses the cached kernels."""

COMPILE_DYNAMIC: bool | None = None
"""``dynamic`` for ``torch.compile``: ``None`` (automatic). The first shape compiles static; a
second shape recompiles once with only the changed dimensions symbolic (usually the batch: the
last batch of tiles, D4's 8·N), and later shapes reuse that graph, so an image of any size costs at
most a few compiles instead of one per shape (``dynamic=False``) or slower all-symbolic kernels
from the start (``dynamic=True``)."""


def inductor_cache_dir(environ: Mapping[str, str], torch_default: str) -> Path:
    """Where inductor keeps compiled graphs: ``$TORCHINDUCTOR_CACHE_DIR`` if the user set it, else
    ``torch-inductor`` in nltool's cache folder (:func:`nltool.cache.cache_dir`), so a later process
    finds the kernels a previous one compiled instead of paying the compile again.

    Importing ``torch._dynamo`` writes torch's default (``torch_default``, under /tmp) into the
    variable, so that value counts as unset: /tmp is per boot, and nltool's cache is the one to keep.
    """
    user = environ.get(INDUCTOR_CACHE_ENV)
    if user and os.path.abspath(user) != os.path.abspath(torch_default):
        return Path(user).expanduser()
    return cache_dir(environ) / INDUCTOR_CACHE_SUBDIR


def point_inductor_cache(environ: MutableMapping[str, str] | None = None) -> Path:
    """Set ``$TORCHINDUCTOR_CACHE_DIR`` to :func:`inductor_cache_dir` (inductor reads it on every cache
    access) and return it; call before compiling (imports torch's inductor runtime)."""
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir

    env = os.environ if environ is None else environ
    path = inductor_cache_dir(env, default_cache_dir())
    env[INDUCTOR_CACHE_ENV] = str(path)
    return path
