"""Issue #3's acceptance run: NL34-LinkNet from scratch on synthetic roads, on this CPU.

    python -m benchmarks.train_synthetic --out /tmp/nltool-train-bench

Synthesizes 64 training and 16 validation scenes of 256×256 (seeds 0 and 1), trains
``nl34-linknet --encoder-weights none --crop 256 --batch-size 4 --max-steps 400``, and prints the
validation IoU curve per epoch and the wall time. The goal is validation IoU >= 0.55.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from benchmarks.common import machine_line
from nltool.data.synth import SynthConfig, write_synthetic_dataset
from nltool.training.config import TrainConfig
from nltool.training.trainer import Trainer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="empty folder for the data and the run")
    parser.add_argument("--arch", default="nl34-linknet")
    parser.add_argument("--max-steps", type=int, default=400)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()

    write_synthetic_dataset(args.out / "train", SynthConfig(n=64, size=256, seed=0))
    write_synthetic_dataset(args.out / "val", SynthConfig(n=16, size=256, seed=1))
    # One pass over the 64 scenes an epoch (16 steps), as when docs/performance.md's table was measured.
    config = TrainConfig(data=args.out / "train", val=args.out / "val", out=args.out / "run", arch=args.arch,
                         encoder_weights="none", crop=256, batch_size=4, max_steps=args.max_steps,
                         workers=args.workers, device="cpu", samples_per_epoch=64)
    started = time.perf_counter()
    result = Trainer(config, show_progress=False).fit()
    wall = time.perf_counter() - started
    print(machine_line())
    print(f"# {args.arch}, 64 train / 16 val synthetic scenes of 256², crop 256, batch 4, {args.max_steps} steps")
    print(f"{'epoch':>5}{'step':>6}{'lr':>10}{'loss':>9}{'val IoU':>9}{'pooled':>8}{'img/s':>7}")
    for row in result.history:
        print(f"{row['epoch']:>5}{row['global_step']:>6}{row['lr']:>10.2e}{row['train_loss']:>9.4f}"
              f"{row['val_mean_iou']:>9.4f}{row['val_pooled_iou']:>8.4f}{row['images_per_second']:>7.1f}")
    print(f"best validation IoU {result.best_metric:.4f} (goal >= 0.55); wall time {wall / 60:.1f} min")


if __name__ == "__main__":
    main()
