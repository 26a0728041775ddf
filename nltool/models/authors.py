"""The NL-LinkNet authors' released ``.th`` files: their module names mapped onto nltool's.

Their files are raw state dicts saved from ``DataParallel`` (keys prefixed ``module.``) with names
such as ``firstconv``, ``encoder1..4``, ``nonlocal3/4``, ``dblock``, ``decoder1..4`` and
``finaldeconv1``/``finalconv2``/``finalconv3``.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

# Authors' prefix -> nltool prefix. Everything below a prefix (BN stats, sub-modules) keeps its name.
_PREFIXES: tuple[tuple[str, str], ...] = (
    ("firstconv.", "encoder.conv1."),
    ("firstbn.", "encoder.bn1."),
    ("encoder1.", "encoder.layer1."),
    ("encoder2.", "encoder.layer2."),
    ("encoder3.", "encoder.layer3."),
    ("encoder4.", "encoder.layer4."),
    ("nonlocal3.", "encoder.nonlocal3."),
    ("nonlocal4.", "encoder.nonlocal4."),
    ("dblock.", "decoder.center."),
    ("decoder4.", "decoder.block4."),
    ("decoder3.", "decoder.block3."),
    ("decoder2.", "decoder.block2."),
    ("decoder1.", "decoder.block1."),
    ("finaldeconv1.", "decoder.head.deconv1."),
    ("finalconv2.", "decoder.head.conv2."),
    ("finalconv3.", "decoder.head.conv3."),
)
# The authors' pairwise-function classes (NL_LinkNet_DotProduct/_Gaussian/_EGaussian) build these
# modules but never call them in forward, so their weights carry no information.
_UNUSED_IN_PAIRWISE_CLASSES = ("seb_conv2.", "seb_conv3.", "seb_conv4.")


def looks_like_authors_state_dict(state: Mapping[str, torch.Tensor]) -> bool:
    """True for a state dict in the authors' naming (with or without the ``module.`` prefix)."""
    return any(k.removeprefix("module.").startswith("firstconv.") for k in state)


def from_authors_state_dict(state: Mapping[str, torch.Tensor], *, has_dilated_center: bool) -> dict[str, torch.Tensor]:
    """Rename an authors' state dict to nltool's module names.

    Keys no prefix covers are kept as they are, so the caller's strict comparison reports them.
    The unused ``seb_conv*`` modules of the authors' pairwise-function classes are dropped, and
    so is their never-called ``dblock`` unless the target arch has a dilated centre.
    """
    stripped = {k.removeprefix("module."): v for k, v in state.items()}
    from_pairwise_class = any(k.startswith(_UNUSED_IN_PAIRWISE_CLASSES) for k in stripped)
    renamed: dict[str, torch.Tensor] = {}
    for key, value in stripped.items():
        if key.startswith(_UNUSED_IN_PAIRWISE_CLASSES):
            continue
        if from_pairwise_class and not has_dilated_center and key.startswith("dblock."):
            continue
        for old, new in _PREFIXES:
            if key.startswith(old):
                key = new + key[len(old):]
                break
        renamed[key] = value
    return renamed


def guess_arch(state: Mapping[str, torch.Tensor]) -> tuple[str, str | None]:
    """The ``(arch, pairwise)`` a state dict's keys suggest, for error messages.

    Dot-product and embedded-Gaussian blocks have the same weights, so the pairwise function is
    ``"gaussian"`` when non-local blocks lack ``theta`` and ``None`` (cannot tell) otherwise.
    """
    keys = [k.removeprefix("module.").removeprefix("encoder.").removeprefix("decoder.") for k in state]

    def has(*prefixes: str) -> bool:
        return any(k.startswith(prefixes) for k in keys)

    nl3, nl4 = has("nonlocal3."), has("nonlocal4.")
    if not (nl3 or nl4):
        center = has("dblock.", "center.") and not has(*_UNUSED_IN_PAIRWISE_CLASSES)
        return ("dlinknet" if center else "linknet"), None
    arch = "nl34-linknet" if nl3 and nl4 else "nl3-linknet" if nl3 else "nl4-linknet"
    return arch, (None if has("nonlocal3.theta", "nonlocal4.theta") else "gaussian")
