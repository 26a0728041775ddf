"""Reading ``torch.save`` files as data only (``weights_only=True``), with errors a user can act on."""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import torch

from nltool.errors import CheckpointError


def _unreadable(what: str, path: Path, exc: BaseException) -> CheckpointError:
    if isinstance(exc, pickle.UnpicklingError):
        detail = "not valid pickle data"  # torch's own text here is advice about weights_only
    else:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else "no detail"
    return CheckpointError(
        f"cannot read {what} {path}: the file is truncated, corrupt or not a PyTorch file "
        f"({type(exc).__name__}: {detail})"
    )


def load_torch_file(path: str | os.PathLike[str], what: str = "checkpoint") -> Any:
    """``torch.load`` on CPU with ``weights_only=True``: files are data, never code.

    Missing, empty, truncated or non-PyTorch files, and files that pickle Python objects, each
    raise :class:`CheckpointError` naming the file and what to do.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{what} not found: {path}")
    if not path.is_file():
        raise CheckpointError(f"{what} path is not a file: {path}")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{what} file is empty: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "Unsupported global" not in str(exc):  # junk bytes also fail inside the weights-only unpickler
            raise _unreadable(what, path, exc) from exc
        raise CheckpointError(
            f"{what} {path} holds Python objects, not only tensors and plain data; nltool loads files "
            "with weights_only=True and will not run code from them. Re-save it as a state dict "
            "(torch.save(model.state_dict(), ...))."
        ) from exc
    except Exception as exc:  # torch.load's legacy path fails on junk with arbitrary error types
        raise _unreadable(what, path, exc) from exc
