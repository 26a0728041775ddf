"""Lazy package exports (PEP 562): ``from nltool.models import build_model`` works, but importing
``nltool.models`` for its torch-free tables does not import torch."""

from __future__ import annotations

import importlib
from collections.abc import Callable


def lazy_exports(package: str, exports: dict[str, tuple[str, ...]]) -> tuple[Callable[[str], object],
                                                                              Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``, importing ``module`` on first use of its names.

    ``exports`` maps a submodule (relative to ``package``) to the names it provides.
    """
    owner = {name: module for module, names in exports.items() for name in names}

    def __getattr__(name: str) -> object:
        module = owner.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{module}"), name)

    def __dir__() -> list[str]:
        return sorted(owner)

    return __getattr__, __dir__
