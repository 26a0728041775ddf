"""Side-by-side figures of a scene: image | ground truth | prediction over the image.

Used by ``nltool demo`` for its per-scene PNGs. Pillow only (no plotting library): three panels
with a title strip; the overlay paints predicted road red, half transparent, over the image.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from nltool.fileio import atomic_path
from nltool.vectors.network import RoadNetwork

ROAD_RGB = np.array([255, 40, 40], dtype=np.float32)
OVERLAY_ALPHA = 0.55
TITLE_HEIGHT = 18
GAP = 4


def overlay(rgb: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``rgb`` with the pixels of ``mask`` (non-zero = road) blended towards red."""
    out = rgb.astype(np.float32)
    road = mask.astype(bool)
    out[road] = (1 - OVERLAY_ALPHA) * out[road] + OVERLAY_ALPHA * ROAD_RGB
    return out.round().astype(np.uint8)


def panel_row(panels: list[tuple[str, Image.Image]], title: str = "") -> Image.Image:
    """Panels of one size side by side, each with its caption, under an optional title strip."""
    width, height = panels[0][1].size
    figure = Image.new("RGB", (len(panels) * width + (len(panels) - 1) * GAP, height + 2 * TITLE_HEIGHT), "white")
    draw = ImageDraw.Draw(figure)
    if title:
        draw.text((2, 2), title, fill="black")
    for i, (caption, panel) in enumerate(panels):
        x = i * (width + GAP)
        figure.paste(panel, (x, 2 * TITLE_HEIGHT))
        draw.text((x + 2, TITLE_HEIGHT + 2), caption, fill="black")
    return figure


def white_on_black(mask: np.ndarray) -> Image.Image:
    """A road mask (non-zero = road) as an RGB panel, white road on black."""
    return Image.fromarray(np.repeat((mask.astype(bool) * 255).astype(np.uint8)[..., None], 3, axis=2))


def scene_figure(rgb: np.ndarray, truth: np.ndarray, prediction: np.ndarray, title: str = "") -> Image.Image:
    """One row of three panels with captions: the image, the truth (white road), the overlay."""
    return panel_row([("image", Image.fromarray(rgb)), ("ground truth", white_on_black(truth)),
                      ("prediction (red)", Image.fromarray(overlay(rgb, prediction)))], title)


NETWORK_RGB = (255, 220, 0)
JUNCTION_RGB = (255, 40, 40)
END_RGB = (40, 200, 255)


def network_figure(rgb: np.ndarray, mask: np.ndarray, network: RoadNetwork, title: str = "") -> Image.Image:
    """One row of three panels: the image, its road mask, and the vectorized network (centre lines in
    yellow, junctions red, dead ends blue) drawn over the image. The network is in pixel coordinates."""
    width = rgb.shape[1]
    drawn = Image.fromarray(rgb).convert("RGB")
    draw = ImageDraw.Draw(drawn)
    line_width = max(2, width // 256)
    for edge in network.edges:
        draw.line([tuple(p) for p in edge.xy.tolist()], fill=NETWORK_RGB, width=line_width)
    for node in network.nodes:
        x, y = node.xy
        r = 2 * line_width
        colour = JUNCTION_RGB if node.kind == "junction" else END_RGB
        draw.ellipse((x - r, y - r, x + r, y + r), fill=colour)
    return panel_row([("image", Image.fromarray(rgb)), ("mask", white_on_black(mask)),
                      (f"network: {len(network.edges)} lines, {network.junctions} junctions", drawn)], title)


def save_figure(figure: Image.Image, path: Path) -> Path:
    """Write a figure as PNG atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        figure.save(tmp, format="PNG")
    return path
