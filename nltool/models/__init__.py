"""The NL-LinkNet model family: blocks, the arch table, the factory, and checkpoints.

The arch table is imported at once (it is torch-free); everything else on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nltool.lazy import lazy_exports
from nltool.models.archs import (
    ARCHS,
    DEFAULT_ARCH,
    DEFAULT_PAIRWISE,
    PAIRWISE_FUNCTIONS,
    SIZE_MULTIPLE,
    ArchSpec,
    Pairwise,
)

_LAZY = {
    "checkpoint": ("CheckpointMetadata", "LoadedCheckpoint", "checkpoint_summary", "load_checkpoint",
                   "load_training_state", "save_checkpoint"),
    "config": ("ModelConfig",),
    "linknet": ("NLLinkNet", "check_input"),
    "nonlocal_block": ("NonLocalBlock2d",),
    "normalization": ("Normalization",),
    "factory": ("build_model", "count_parameters", "list_archs"),
}
__getattr__, __dir__ = lazy_exports(__name__, _LAZY)

if TYPE_CHECKING:
    from nltool.models.checkpoint import (
        CheckpointMetadata,
        LoadedCheckpoint,
        checkpoint_summary,
        load_checkpoint,
        load_training_state,
        save_checkpoint,
    )
    from nltool.models.config import ModelConfig
    from nltool.models.factory import build_model, count_parameters, list_archs
    from nltool.models.linknet import NLLinkNet, check_input
    from nltool.models.nonlocal_block import NonLocalBlock2d
    from nltool.models.normalization import Normalization

__all__ = [
    "ARCHS",
    "DEFAULT_ARCH",
    "DEFAULT_PAIRWISE",
    "PAIRWISE_FUNCTIONS",
    "SIZE_MULTIPLE",
    "ArchSpec",
    "CheckpointMetadata",
    "LoadedCheckpoint",
    "ModelConfig",
    "NLLinkNet",
    "NonLocalBlock2d",
    "Normalization",
    "Pairwise",
    "build_model",
    "check_input",
    "checkpoint_summary",
    "count_parameters",
    "list_archs",
    "load_checkpoint",
    "load_training_state",
    "save_checkpoint",
]
