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


def scene_figure(rgb: np.ndarray, truth: np.ndarray, prediction: np.ndarray, title: str = "") -> Image.Image:
    """One row of three panels with captions: the image, the truth (white road), the overlay."""
    height, width = rgb.shape[:2]
    truth_rgb = np.repeat((truth.astype(bool) * 255).astype(np.uint8)[..., None], 3, axis=2)
    panels = [("image", rgb), ("ground truth", truth_rgb), ("prediction (red)", overlay(rgb, prediction))]
    figure = Image.new("RGB", (3 * width + 2 * GAP, height + 2 * TITLE_HEIGHT), "white")
    draw = ImageDraw.Draw(figure)
    if title:
        draw.text((2, 2), title, fill="black")
    for i, (caption, pixels) in enumerate(panels):
        x = i * (width + GAP)
        figure.paste(Image.fromarray(pixels), (x, 2 * TITLE_HEIGHT))
        draw.text((x + 2, TITLE_HEIGHT + 2), caption, fill="black")
    return figure


NETWORK_RGB = (255, 220, 0)
JUNCTION_RGB = (255, 40, 40)
END_RGB = (40, 200, 255)


def network_figure(rgb: np.ndarray, mask: np.ndarray, network: RoadNetwork, title: str = "") -> Image.Image:
    """One row of three panels: the image, its road mask, and the vectorized network (centre lines in
    yellow, junctions red, dead ends blue) drawn over the image. The network is in pixel coordinates."""
    height, width = rgb.shape[:2]
    mask_rgb = np.repeat((mask.astype(bool) * 255).astype(np.uint8)[..., None], 3, axis=2)
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
    panels = [("image", Image.fromarray(rgb)), ("mask", Image.fromarray(mask_rgb)),
              (f"network: {len(network.edges)} lines, {network.junctions} junctions", drawn)]
    figure = Image.new("RGB", (3 * width + 2 * GAP, height + 2 * TITLE_HEIGHT), "white")
    caption = ImageDraw.Draw(figure)
    if title:
        caption.text((2, 2), title, fill="black")
    for i, (text, panel) in enumerate(panels):
        x = i * (width + GAP)
        figure.paste(panel, (x, 2 * TITLE_HEIGHT))
        caption.text((x + 2, TITLE_HEIGHT + 2), text, fill="black")
    return figure


def save_figure(figure: Image.Image, path: Path) -> Path:
    """Write a figure as PNG atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        figure.save(tmp, format="PNG")
    return path
