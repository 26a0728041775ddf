"""The architecture table: every arch name nltool knows and what it contains (paper Table II).

Torch-free on purpose: the CLI reads the names here without paying for importing torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

Pairwise = Literal["embedded_gaussian", "gaussian", "dot_product"]
PAIRWISE_FUNCTIONS: tuple[str, ...] = get_args(Pairwise)
SIZE_MULTIPLE = 32
"""Input sides must be multiples of the encoder's total stride."""


@dataclass(frozen=True)
class ArchSpec:
    """What an architecture adds to the LinkNet34 baseline, and how the paper and authors name it."""

    name: str
    nonlocal3: bool
    nonlocal4: bool
    dilated_center: bool
    paper_params_m: float  # Table II, millions, embedded Gaussian pairwise
    authors_class: str
    description: str
    nonlocal4_feeds_skip: bool = False


ARCHS: dict[str, ArchSpec] = {
    spec.name: spec
    for spec in (
        ArchSpec("linknet", False, False, False, 21.657, "Baseline", "LinkNet34 baseline (no context block)"),
        ArchSpec("nl3-linknet", True, False, False, 21.690, "NL3_LinkNet", "non-local block before layer3"),
        # The authors' NL4_LinkNet feeds the block's output to the e3 skip as well as to layer4.
        ArchSpec("nl4-linknet", False, True, False, 21.789, "NL4_LinkNet", "non-local block before layer4",
                 nonlocal4_feeds_skip=True),
        ArchSpec("nl34-linknet", True, True, False, 21.822, "NL34_LinkNet",
                 "non-local blocks before layer3 and layer4 (the paper's best)"),
        ArchSpec("dlinknet", False, False, True, 31.096, "DinkNet34", "D-LinkNet34: dilated centre block after layer4"),
    )
}
DEFAULT_ARCH = "nl34-linknet"
DEFAULT_PAIRWISE: Pairwise = "embedded_gaussian"
