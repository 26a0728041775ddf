"""What ``nltool predict`` INPUTS may be: image files, folders, glob patterns, or manifests."""

from __future__ import annotations

import glob
from collections.abc import Iterable, Sequence
from pathlib import Path

from nltool.errors import ImageError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
"""Files a folder contributes (by name; the pipeline still checks every file's bytes)."""
MANIFEST_SUFFIXES = (".txt", ".lst", ".list", ".manifest")
"""A file with one of these suffixes is a manifest: one image path per line."""
_GLOB_CHARS = frozenset("*?[")


def expand_inputs(inputs: Sequence[Path], exclude: Path | None = None) -> list[Path]:
    """Files, folders (their images, recursively, sorted), glob patterns (quoted, so the shell
    leaves them) and manifests (one path per line, relative to the manifest; ``#`` comments and
    blank lines skipped) -> the image paths, each once, in order. Files a folder or pattern finds
    under ``exclude`` (the output folder) are left out, so a rerun never reads its own masks. A
    path that does not exist is kept: the caller reports it."""
    excluded = exclude.resolve() if exclude is not None else None
    unique: dict[Path, Path] = {}
    for item in map(Path, inputs):
        for path, searched in _expand(item):
            resolved = path.resolve()
            if not (searched and excluded is not None and resolved.is_relative_to(excluded)):
                unique.setdefault(resolved, path)
    return list(unique.values())


def _expand(item: Path) -> Iterable[tuple[Path, bool]]:
    """The paths ``item`` stands for, each with whether it was found by searching (folder, glob)."""
    if item.is_dir():
        return [(p, True) for p in sorted(item.rglob("*")) if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                and not any(part.startswith(".") for part in p.relative_to(item).parts)]
    if item.is_file() and item.suffix.lower() in MANIFEST_SUFFIXES:
        return [(p, False) for p in _read_manifest(item)]
    if not item.exists() and _GLOB_CHARS & set(str(item)):
        matches = sorted(Path(p) for p in glob.glob(str(item), recursive=True) if Path(p).is_file())
        if not matches:
            raise ImageError(f"no files match {item}")
        return [(p, True) for p in matches]
    return [(item, False)]


def _read_manifest(manifest: Path) -> list[Path]:
    try:
        lines = manifest.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ImageError(f"cannot read manifest {manifest}: {exc}") from exc
    paths = []
    for line in lines:
        entry = line.strip()
        if entry and not entry.startswith("#"):
            path = Path(entry).expanduser()
            paths.append(path if path.is_absolute() else manifest.parent / path)
    if not paths:
        raise ImageError(f"manifest {manifest} lists no images (one path per line)")
    return paths
