"""Checkpoints: one file with weights plus metadata; the authors' ``.th`` files load too.

nltool's format is a ``torch.save`` of a plain dict (loadable with ``weights_only=True``)::

    {"format": "nltool.checkpoint", "format_version": 1,
     "metadata": {"arch", "pairwise", "normalization", "nltool_version",
                  "training_config", "epoch", "best_metric", "metric_name"},
     "state_dict": {...}}

A raw state dict (the authors' ``DataParallel`` files, or ``model.state_dict()``) has no metadata,
so its arch must be given. Nothing loads partially: any key or shape that does not fit is one
:class:`~nltool.errors.CheckpointError` naming all of them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

from nltool import __version__
from nltool.errors import CheckpointError, ModelConfigError
from nltool.fileio import atomic_path
from nltool.models.authors import from_authors_state_dict, guess_arch, looks_like_authors_state_dict
from nltool.models.config import ModelConfig
from nltool.models.linknet import NLLinkNet
from nltool.models.nonlocal_block import Pairwise
from nltool.models.normalization import Normalization
from nltool.models.state_dict import diff_state_dict
from nltool.models.torchfile import load_torch_file

CHECKPOINT_FORMAT = "nltool.checkpoint"
FORMAT_VERSION = 1
SourceFormat = Literal["nltool", "authors", "state_dict"]


@dataclass(frozen=True)
class CheckpointMetadata:
    """What a checkpoint says about its model and how it was trained."""

    config: ModelConfig
    nltool_version: str = __version__
    training_config: dict[str, Any] = field(default_factory=dict)
    epoch: int | None = None
    best_metric: float | None = None
    metric_name: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain data (str, numbers, lists, dicts) so the file stays loadable with ``weights_only``."""
        return {
            **self.config.to_dict(),
            "nltool_version": self.nltool_version,
            "training_config": dict(self.training_config),
            "epoch": self.epoch,
            "best_metric": self.best_metric,
            "metric_name": self.metric_name,
        }

    @classmethod
    def from_dict(cls, data: Any, path: Path) -> CheckpointMetadata:
        """Parse the ``metadata`` entry of an nltool checkpoint file."""
        if not isinstance(data, dict):
            raise CheckpointError(f"checkpoint {path} has no metadata dict")
        try:
            config = ModelConfig(
                arch=data["arch"],
                pairwise=data.get("pairwise", "embedded_gaussian"),
                normalization=Normalization.from_dict(data["normalization"]),
            )
        except KeyError as exc:
            raise CheckpointError(f"checkpoint {path} metadata lacks {exc.args[0]!r}") from exc
        except ModelConfigError as exc:
            raise CheckpointError(f"checkpoint {path} metadata: {exc}") from exc
        return cls(
            config=config,
            nltool_version=str(data.get("nltool_version", "unknown")),
            training_config=dict(data.get("training_config") or {}),
            epoch=data.get("epoch"),
            best_metric=data.get("best_metric"),
            metric_name=data.get("metric_name"),
        )


@dataclass
class LoadedCheckpoint:
    """A model in eval mode, its metadata, and which kind of file it came from."""

    model: NLLinkNet
    metadata: CheckpointMetadata
    path: Path
    source_format: SourceFormat


def save_checkpoint(
    path: str | os.PathLike[str],
    model: NLLinkNet,
    *,
    training_config: dict[str, Any] | None = None,
    epoch: int | None = None,
    best_metric: float | None = None,
    metric_name: str | None = None,
    training_state: dict[str, Any] | None = None,
) -> Path:
    """Write ``model`` and its metadata to ``path`` atomically (temp file, then rename).

    ``training_state`` (optimizer, schedule, RNG, counters: tensors and plain data only) is what
    ``--resume`` needs; :func:`load_training_state` reads it back, :func:`load_checkpoint` ignores it.
    """
    path = Path(path)
    metadata = CheckpointMetadata(
        config=model.config,
        training_config=training_config or {},
        epoch=epoch,
        best_metric=best_metric,
        metric_name=metric_name,
    )
    payload = {
        "format": CHECKPOINT_FORMAT,
        "format_version": FORMAT_VERSION,
        "metadata": metadata.to_dict(),
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
    }
    if training_state is not None:
        payload["training_state"] = training_state
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            torch.save(payload, tmp)
    except OSError as exc:
        raise CheckpointError(f"cannot write checkpoint {path}: {exc}") from exc
    return path


def load_training_state(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``training_state`` saved with a checkpoint, for ``--resume``; an error if it has none."""
    data = load_torch_file(path)
    state = data.get("training_state") if isinstance(data, dict) and data.get("format") == CHECKPOINT_FORMAT else None
    if not isinstance(state, dict):
        raise CheckpointError(
            f"{path} has no training state to resume from; resume from a run's last.pt "
            "(a best.pt or an authors' .th holds weights only)"
        )
    return state


def _arch_hint(state: dict[str, torch.Tensor]) -> str:
    arch, pairwise = guess_arch(state)
    return f"--arch {arch}" + (f" --pairwise {pairwise}" if pairwise else "")


def _read_nltool(data: dict[str, Any], path: Path, arch: str | None, pairwise: str | None
                 ) -> tuple[CheckpointMetadata, dict[str, torch.Tensor]]:
    version = data.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(
            f"checkpoint {path} has format version {version!r}; this nltool ({__version__}) reads up to "
            f"{FORMAT_VERSION}. Upgrade nltool."
        )
    metadata = CheckpointMetadata.from_dict(data.get("metadata"), path)
    config = metadata.config
    if arch is not None and arch != config.arch:
        raise CheckpointError(
            f"checkpoint {path} holds a {config.arch!r} model but arch {arch!r} was requested; "
            "nltool checkpoints record their arch, so leave --arch out"
        )
    if pairwise is not None and config.has_nonlocal and pairwise != config.pairwise:
        raise CheckpointError(
            f"checkpoint {path} uses pairwise {config.pairwise!r} but {pairwise!r} was requested; leave --pairwise out"
        )
    state = data.get("state_dict")
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {path} has no state_dict")
    return metadata, state


def load_checkpoint(
    path: str | os.PathLike[str],
    *,
    arch: str | None = None,
    pairwise: Pairwise | None = None,
) -> LoadedCheckpoint:
    """Load an nltool checkpoint, an authors' ``.th`` file or a raw state dict (on CPU, eval mode).

    ``arch``/``pairwise`` are required for raw state dicts (they carry no metadata) and must
    agree with the metadata of nltool checkpoints.
    """
    path = Path(path)
    data = load_torch_file(path)
    source: SourceFormat
    if isinstance(data, dict) and data.get("format") == CHECKPOINT_FORMAT:
        metadata, state = _read_nltool(data, path, arch, pairwise)
        source = "nltool"
    elif isinstance(data, dict) and data and all(isinstance(v, torch.Tensor) for v in data.values()):
        if arch is None:
            raise CheckpointError(
                f"{path} is a raw state dict without metadata (such as the authors' released .th files), "
                f"so its arch must be given; its keys look like {_arch_hint(data)}"
            )
        try:
            metadata = CheckpointMetadata(config=ModelConfig(arch=arch, pairwise=pairwise or "embedded_gaussian"))
        except ModelConfigError as exc:
            raise CheckpointError(str(exc)) from exc
        if looks_like_authors_state_dict(data):
            state = from_authors_state_dict(data, has_dilated_center=metadata.config.spec.dilated_center)
            source = "authors"
        else:
            state = {k.removeprefix("module."): v for k, v in data.items()}
            source = "state_dict"
    else:
        raise CheckpointError(
            f"{path} is neither an nltool checkpoint nor a state dict of tensors "
            f"(found {type(data).__name__}"
            f"{' with keys ' + ', '.join(map(str, list(data)[:5])) if isinstance(data, dict) else ''})"
        )

    model = NLLinkNet(metadata.config)
    diff = diff_state_dict(model.state_dict(), state)
    if diff:
        config = metadata.config
        raise CheckpointError(
            f"{path} does not fit arch {config.arch!r} (pairwise {config.pairwise!r}); nothing was loaded.\n"
            f"{diff.describe()}\n  its keys look like {_arch_hint(state)}"
        )
    model.load_state_dict(state, strict=True)
    model.eval()
    return LoadedCheckpoint(model=model, metadata=metadata, path=path, source_format=source)


def checkpoint_summary(loaded: LoadedCheckpoint) -> dict[str, Any]:
    """What ``nltool info`` shows: file, format, model, parameter count and training metadata."""
    meta = loaded.metadata
    spec = meta.config.spec
    params = sum(p.numel() for p in loaded.model.parameters())
    return {
        "file": str(loaded.path),
        "format": loaded.source_format,
        "arch": meta.config.arch,
        "description": spec.description,
        "pairwise": meta.config.pairwise if meta.config.has_nonlocal else None,
        "parameters": params,
        "paper_parameters_m": spec.paper_params_m if meta.config.pairwise == "embedded_gaussian" else None,
        "normalization": meta.config.normalization.describe(),
        "nltool_version": meta.nltool_version if loaded.source_format == "nltool" else None,
        "epoch": meta.epoch,
        "best_metric": meta.best_metric,
        "metric_name": meta.metric_name,
        "training_config": meta.training_config,
    }
