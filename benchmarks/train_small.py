"""Training on a user's own small dataset: ``nltool train`` against a minimal training loop.

    python -m benchmarks.train_small --out /tmp/nltool-small-bench

Writes two synthetic 650² training scenes and two 640² validation scenes (``nltool data synth``'s
writer, seeds 0 and 1), then trains NL34-LinkNet from scratch twice for the same number of steps
(400) at crop 256, batch 4:

1. ``nltool train --encoder-weights none --crop 256 --batch-size 4 --max-steps 400`` with every
   other option at its default (epochs, schedule, validation, best.pt);
2. a minimal loop: the same model and initial weights, loss (BCE + Dice), Adam at 3e-4, the same
   augmented 256² crops and batch size, the same number of steps, no schedule, no validation.

Both final models, and nltool's best.pt, are scored on the validation scenes with the inference
pipeline (no TTA); the minimal loop is also scored whenever nltool validates (every epoch), which
does not change its training, so both curves show how much the IoU on two scenes moves from one
100 steps to the next. The three models are also scored on ``--more-val`` (16) further 640²
scenes (seed 2) that no model saw or was selected on: two scenes are a noisy yardstick. The goal:
nltool runs all 400 steps and its validation IoU is at least 95% of the minimal loop's. ``--seed``
changes the initial weights, crops and augmentation of both. On a CPU shared with other work, run
it with ``OMP_NUM_THREADS=1``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, RandomSampler

from benchmarks.common import machine_line
from nltool.data.deepglobe import find_pairs
from nltool.data.synth import SynthConfig, write_synthetic_dataset
from nltool.evaluation import evaluate_samples
from nltool.inference import InferencePipeline, PipelineConfig
from nltool.inference.backends.torch_backend import TorchBackend
from nltool.metrics import IoUAccumulator
from nltool.models import NLLinkNet, build_model, load_checkpoint
from nltool.training.augment import AugmentConfig, build_train_transform
from nltool.training.dataset import RoadDataset
from nltool.training.losses import RoadLoss

ARCH, CROP, BATCH, LR = "nl34-linknet", 256, 4, 3e-4
GOAL = 0.95


def score(model: NLLinkNet, val: Path) -> IoUAccumulator:
    """Validation IoUs of ``model`` through the inference pipeline (no TTA), as training validates."""
    pipeline = InferencePipeline(TorchBackend(model.eval(), device="cpu"), PipelineConfig())
    return evaluate_samples(pipeline, find_pairs(val))


def run_nltool(data: Path, val: Path, run: Path, steps: int, workers: int, seed: int) -> tuple[list[str], float]:
    """``nltool train`` as a user runs it; returns its closing lines and wall time."""
    command = [sys.executable, "-m", "nltool", "train", "--data", str(data), "--val", str(val), "--out", str(run),
               "--arch", ARCH, "--encoder-weights", "none", "--crop", str(CROP), "--batch-size", str(BATCH),
               "--max-steps", str(steps), "--workers", str(workers), "--device", "cpu", "--seed", str(seed)]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    (run.parent / "nltool-train.log").write_text(done.stderr + done.stdout)
    if done.returncode:
        raise SystemExit(f"nltool train failed:\n{done.stderr[-3000:]}")
    return done.stdout.strip().splitlines(), time.perf_counter() - started


def run_minimal(data: Path, val: Path, steps: int, workers: int, seed: int, every: int
                ) -> tuple[NLLinkNet, float, dict[int, float]]:
    """The plain loop: random crops with replacement, Adam, BCE + Dice, nothing else; also returns its
    validation IoU every ``every`` steps (scored in eval mode, which leaves its training untouched)."""
    torch.manual_seed(seed)
    model = build_model(ARCH, encoder_weights="none")
    dataset = RoadDataset(find_pairs(data), build_train_transform(AugmentConfig(crop=CROP)))
    loader = DataLoader(dataset, batch_size=BATCH, num_workers=workers,
                        sampler=RandomSampler(dataset, replacement=True, num_samples=steps * BATCH))
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    criterion = RoadLoss("bce_dice")
    normalize = model.config.normalization
    started, scoring, curve = time.perf_counter(), 0.0, {}
    model.train()
    for step, (images, masks) in enumerate(loader, start=1):
        loss = criterion(model(normalize.apply(images)), masks)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step % every == 0:
            scored = time.perf_counter()
            curve[step] = score(model, val).mean_iou
            model.train()
            scoring += time.perf_counter() - scored
    return model, time.perf_counter() - started - scoring, curve


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="empty folder for the data and both runs")
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--more-val", type=int, default=16, help="further validation scenes, scored at the end")
    args = parser.parse_args()

    data, val = args.out / "train", args.out / "val"
    write_synthetic_dataset(data, SynthConfig(n=2, size=650, seed=0))
    write_synthetic_dataset(val, SynthConfig(n=2, size=640, seed=1))
    more = args.out / "val-more"
    write_synthetic_dataset(more, SynthConfig(n=args.more_val, size=640, seed=2))

    closing, nltool_wall = run_nltool(data, val, args.out / "run", args.steps, args.workers, args.seed)
    split = json.loads((args.out / "run" / "split.json").read_text())
    minimal_model, minimal_wall, curve = run_minimal(data, val, args.steps, args.workers, args.seed,
                                                     split["epoch"]["steps_per_epoch"])

    last = load_checkpoint(args.out / "run" / "last.pt")
    best = load_checkpoint(args.out / "run" / "best.pt")
    models = {"nltool last.pt": last.model, "nltool best.pt": best.model, "minimal loop": minimal_model}
    scores = {name: score(model, val) for name, model in models.items()}
    more_scores = {name: score(model, more) for name, model in models.items()}
    rows = [json.loads(line) for line in (args.out / "run" / "metrics.jsonl").read_text().splitlines()]

    print(machine_line())
    print(f"# {ARCH} from scratch, 2 train scenes 650² + 2 val scenes 640² (synthetic), crop {CROP}, batch {BATCH}, "
          f"{args.steps} steps, seed {args.seed}")
    print(f"# nltool: {split['epoch']['samples_per_epoch']} crops = {split['epoch']['steps_per_epoch']} steps an "
          f"epoch; {closing[-1]}")
    print(f"{'epoch':>5}{'step':>6}{'lr':>10}{'loss':>9}{'val IoU':>9}{'action':>10}{'minimal loop val IoU':>22}")
    for row in rows:
        print(f"{row['epoch']:>5}{row['global_step']:>6}{row['lr']:>10.2e}{row['train_loss']:>9.4f}"
              f"{row.get('val_mean_iou', float('nan')):>9.4f}{row.get('action', '-'):>10}"
              f"{curve.get(row['global_step'], float('nan')):>22.4f}")
    print(f"{'model':<16}{'val IoU (mean per image)':>26}{'pooled':>9}{f'{args.more_val} more scenes':>17}"
          f"{'pooled':>9}{'wall min':>10}")
    walls = {"nltool last.pt": nltool_wall, "nltool best.pt": nltool_wall, "minimal loop": minimal_wall}
    for name, result in scores.items():
        print(f"{name:<16}{result.mean_iou:>26.4f}{result.pooled_iou:>9.4f}{more_scores[name].mean_iou:>17.4f}"
              f"{more_scores[name].pooled_iou:>9.4f}{walls[name] / 60:>10.1f}")
    for label, table in (("2 val scenes", scores), (f"{args.more_val} more scenes", more_scores)):
        reference = table["minimal loop"].mean_iou
        for name in ("nltool last.pt", "nltool best.pt"):
            ratio = table[name].mean_iou / reference if reference else float("nan")
            print(f"{name} / minimal loop on {label}: {ratio:.3f} (goal >= {GOAL})")
    print(f"nltool ran {rows[-1]['global_step']} of {args.steps} steps")


if __name__ == "__main__":
    main()
