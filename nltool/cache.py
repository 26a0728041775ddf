"""Where nltool keeps what outlives one command: TensorRT's timing cache, onnxruntime's TensorRT
engines, torch.compile's kernels (``torch-inductor``).

All are slow to build and tied to the GPU and library versions, so they live in one per-user
folder (not in an export's staging folder or a TorchServe worker's temporary model folder) and
every later export or worker reuses them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

CACHE_ENV = "NLTOOL_CACHE_DIR"


def cache_dir(environ: Mapping[str, str] | None = None, home: Path | None = None) -> Path:
    """``$NLTOOL_CACHE_DIR``, else ``$XDG_CACHE_HOME/nltool``, else ``~/.cache/nltool`` (not created here)."""
    env = os.environ if environ is None else environ
    if env.get(CACHE_ENV):
        return Path(env[CACHE_ENV]).expanduser()
    if env.get("XDG_CACHE_HOME"):
        return Path(env["XDG_CACHE_HOME"]).expanduser() / "nltool"
    return (home or Path.home()) / ".cache" / "nltool"
