"""Where a run's weights start (fresh, ImageNet encoder, or a checkpoint) and keeping the encoder frozen.

``--init`` loads weights only -- an nltool checkpoint or the authors' released ``.th`` -- so the
optimizer and schedule start fresh. ``--freeze-encoder-steps N`` keeps the ResNet34 part of the
encoder (stem and layer1-4, not the non-local blocks) fixed for the first N optimizer steps: its
gradients are dropped before each step and its BatchNorm layers run in eval mode, so neither the
weights nor the running statistics move. Dropping gradients (rather than ``requires_grad``) works
unchanged under DistributedDataParallel.
"""

from __future__ import annotations

from torch import nn

from nltool.models import NLLinkNet, build_model, load_checkpoint
from nltool.training.config import TrainConfig

NONLOCAL_PREFIXES = ("nonlocal3", "nonlocal4")


def initial_model(config: TrainConfig) -> NLLinkNet:
    """The model a new run starts from, in training mode: ``config.init``'s weights, or a fresh one."""
    if config.init is None:
        return build_model(config.arch, pairwise=config.pairwise,  # type: ignore[arg-type]
                           encoder_weights=config.encoder_weights)
    loaded = load_checkpoint(config.init, arch=config.arch, pairwise=config.pairwise)  # type: ignore[arg-type]
    return loaded.model.train()


def _is_resnet(name: str) -> bool:
    """Whether an encoder sub-module or parameter name belongs to the ResNet34 (not a non-local block)."""
    return not name.startswith(NONLOCAL_PREFIXES)


class EncoderFreeze:
    """Keeps ``model``'s ResNet34 encoder fixed while the optimizer step is below ``steps``."""

    def __init__(self, model: NLLinkNet, steps: int) -> None:
        self.model = model
        self.steps = steps
        encoder = model.encoder
        self.parameters = [p for name, p in encoder.named_parameters() if _is_resnet(name)]
        self.norms = [m for name, m in encoder.named_modules()
                      if name and _is_resnet(name) and isinstance(m, nn.modules.batchnorm._BatchNorm)]

    def active(self, step: int) -> bool:
        """Whether optimizer step ``step`` (0-based) keeps the encoder frozen."""
        return step < self.steps

    def train_mode(self, step: int) -> None:
        """Put the model in training mode, with the encoder's BatchNorm in eval mode while frozen."""
        self.model.train()
        if self.active(step):
            for norm in self.norms:
                norm.eval()

    def drop_gradients(self, step: int) -> None:
        """Before optimizer step ``step``: remove the encoder's gradients while frozen, so Adam skips it."""
        if self.active(step):
            for parameter in self.parameters:
                parameter.grad = None
