"""The NL-LinkNet model family: blocks, the arch registry, and checkpoints."""

from nltool.models.archs import ARCHS, DEFAULT_ARCH, DEFAULT_PAIRWISE, ArchSpec
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
from nltool.models.linknet import SIZE_MULTIPLE, NLLinkNet, check_input
from nltool.models.nonlocal_block import PAIRWISE_FUNCTIONS, NonLocalBlock2d, Pairwise
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
