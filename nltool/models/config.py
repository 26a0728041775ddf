"""ModelConfig: the explicit, serialisable description of one model (arch, pairwise, normalization)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from nltool.errors import ModelConfigError
from nltool.models.archs import ARCHS, DEFAULT_ARCH, DEFAULT_PAIRWISE, PAIRWISE_FUNCTIONS, ArchSpec, Pairwise
from nltool.models.normalization import Normalization


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a model's structure and feed it; stored in every checkpoint."""

    arch: str = DEFAULT_ARCH
    pairwise: Pairwise = DEFAULT_PAIRWISE
    normalization: Normalization = field(default_factory=Normalization.paper)

    def __post_init__(self) -> None:
        if self.arch not in ARCHS:
            raise ModelConfigError(f"unknown arch {self.arch!r}; choose one of {', '.join(ARCHS)}")
        if self.pairwise not in PAIRWISE_FUNCTIONS:
            raise ModelConfigError(
                f"unknown pairwise function {self.pairwise!r}; choose one of {', '.join(PAIRWISE_FUNCTIONS)}"
            )

    @property
    def spec(self) -> ArchSpec:
        """The arch's row in the architecture table."""
        return ARCHS[self.arch]

    @property
    def has_nonlocal(self) -> bool:
        """Whether the pairwise function matters for this arch."""
        return self.spec.nonlocal3 or self.spec.nonlocal4

    def to_dict(self) -> dict[str, Any]:
        """Plain data for checkpoint metadata."""
        return {"arch": self.arch, "pairwise": self.pairwise, "normalization": self.normalization.to_dict()}
