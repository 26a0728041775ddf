"""The authors' D4 inference, reimplemented as the speed reference: one image, one process.

Their test script (``TTAFrame.test_one_img_from_path_8``) reads the whole image, stacks it with
its 90° rotation, and runs four eager forward passes of that pair (as is, flipped vertically,
flipped horizontally, both), undoes the flips and the rotation, sums the 8 probability maps and
calls road where the sum is above 4 (mean probability > 0.5). Same normalization as theirs
(``x / 255 * 3.2 - 1.6``), PyTorch eager FP32 on the CPU, no tiling.

    python -m benchmarks.authors_d4 CHECKPOINT IMAGE OUT_MASK_PNG

Prints ``inference <seconds>`` (forward passes and TTA only) for the whole-process comparison.
"""

from __future__ import annotations

import sys
import time

import numpy as np
import torch
from PIL import Image

from nltool.models import load_checkpoint


def d4_sum(net: torch.nn.Module, img: np.ndarray) -> np.ndarray:
    """Sum of the 8 probability maps of H×W×3 uint8 ``img`` (square), as the authors compute it."""
    img90 = np.array(np.rot90(img))
    img1 = np.concatenate([img[None], img90[None]])
    img2 = np.array(img1)[:, ::-1]
    img3 = np.array(img1)[:, :, ::-1]
    img4 = np.array(img2)[:, :, ::-1]

    def forward(batch: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.array(batch.transpose(0, 3, 1, 2), np.float32) / 255.0 * 3.2 - 1.6)
        with torch.no_grad():
            return torch.sigmoid(net(x)).squeeze(1).numpy()

    maska, maskb, maskc, maskd = (forward(batch) for batch in (img1, img2, img3, img4))
    mask1 = maska + maskb[:, ::-1] + maskc[:, :, ::-1] + maskd[:, ::-1, ::-1]
    return mask1[0] + np.rot90(mask1[1])[::-1, ::-1]


def main() -> None:
    checkpoint, image, out = sys.argv[1:4]
    net = load_checkpoint(checkpoint).model.eval()
    img = np.asarray(Image.open(image).convert("RGB"))
    started = time.perf_counter()
    mask = d4_sum(net, img)
    seconds = time.perf_counter() - started
    Image.fromarray(np.where(mask > 4.0, 255, 0).astype(np.uint8)).save(out)
    print(f"inference {seconds:.3f}")


if __name__ == "__main__":
    main()
