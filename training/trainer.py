"""The training loop: the paper's recipe on CPU or CUDA, one process or many (torchrun, DDP).

A run folder holds ``config.json``, ``split.json`` (which scenes trained and validated),
``metrics.jsonl`` (one row per epoch), ``last.pt`` (weights plus everything ``--resume`` needs)
and ``best.pt`` (best validation IoU, or lowest epoch loss without validation data). Both
checkpoints are written atomically, so a crash never leaves a corrupt one.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from nltool.data.deepglobe import Sample, find_pairs, split_samples, validate_samples
from nltool.devices import resolve_device
from nltool.evaluation import evaluate_samples
from nltool.fileio import write_json
from nltool.inference import InferencePipeline, PipelineConfig
from nltool.inference.backends.torch_backend import TorchBackend
from nltool.models import NLLinkNet, build_model, load_checkpoint, load_training_state, save_checkpoint
from nltool.progress import progress_bar
from nltool.training.augment import AugmentConfig, build_train_transform
from nltool.training.config import TrainConfig
from nltool.training.dataset import RoadDataset
from nltool.training.distributed import DistInfo, barrier, broadcast_flag, init_distributed, mean_across_ranks, shutdown
from nltool.training.losses import RoadLoss
from nltool.training.sampling import EpochSampler, SeededAugmentation
from nltool.training.schedule import PlateauSchedule

METRIC_VAL = "val_mean_iou"
METRIC_LOSS = "train_loss"
RESUMABLE_OVERRIDES = ("out", "epochs", "max_steps", "workers", "device")
"""Options a resumed run may change; everything else comes from the run being resumed."""


@dataclass
class TrainResult:
    """Where a run wrote its files and how it ended."""

    run_dir: Path
    last: Path
    best: Path
    global_step: int
    epochs_completed: int
    best_metric: float | None
    metric_name: str
    history: list[dict[str, Any]] = field(default_factory=list)
    stopped_early: bool = False
    is_main: bool = True


@dataclass
class _State:
    """Counters and accumulators that ``--resume`` restores."""

    epoch: int = 0
    step_in_epoch: int = 0
    global_step: int = 0
    epoch_loss_sum: float = 0.0
    epoch_batches: int = 0
    best_metric: float | None = None


def _split(config: TrainConfig) -> tuple[list[Sample], list[Sample]]:
    samples = find_pairs(config.data)
    if config.val is not None:
        return samples, find_pairs(config.val)
    return split_samples(samples, config.val_fraction, config.seed)


def restore_scaler(scaler: torch.amp.GradScaler, state: dict[str, Any]) -> bool:
    """Load a saved ``GradScaler`` state into ``scaler``; returns whether one was loaded.

    A run trained without AMP (on the CPU, or with ``--no-amp``) saved a disabled scaler's empty
    state, which an enabled scaler refuses ("The source state dict is empty"); resuming such a run
    with AMP starts from a fresh scaler instead. A disabled scaler ignores any state.
    """
    if not state:
        return False
    scaler.load_state_dict(state)
    return scaler.is_enabled()


def _resumed_config(config: TrainConfig, stored: dict[str, Any]) -> TrainConfig:
    """The resumed run's own config (``stored``), with only :data:`RESUMABLE_OVERRIDES` from ``config``."""
    fields = {k: v for k, v in stored.items() if k in TrainConfig.__dataclass_fields__}
    for key in ("data", "out", "val"):
        if fields.get(key) is not None:
            fields[key] = Path(fields[key])
    base = TrainConfig(**fields)
    return replace(base, **{k: getattr(config, k) for k in RESUMABLE_OVERRIDES})


class Trainer:
    """Runs one training job; construct, then call :meth:`fit`."""

    def __init__(self, config: TrainConfig, *, resume: Path | None = None,
                 log: Callable[[str], None] = print, show_progress: bool = True) -> None:
        self.resume = resume
        self._resumed = load_checkpoint(resume) if resume else None
        self.config = _resumed_config(config, self._resumed.metadata.training_config) if self._resumed else config
        self.show_progress = show_progress
        self.device = resolve_device(self.config.device)
        self.dist: DistInfo = init_distributed(self.device)
        if self.dist.enabled and self.device.type == "cuda":
            self.device = torch.device("cuda", self.dist.local_rank)
            torch.cuda.set_device(self.device)
        if self.dist.enabled and self.device.type == "cpu":  # do not oversubscribe the cores
            torch.set_num_threads(max(1, (os.cpu_count() or 1) // self.dist.world_size))
        self.use_amp = self.config.amp and self.device.type == "cuda"
        self.run_dir = Path(self.config.out)
        self.log = log if self.dist.is_main else (lambda message: None)

    # -- set-up -----------------------------------------------------------------------------
    def _prepare_data(self) -> tuple[SeededAugmentation, list[Sample]]:
        train_samples, val_samples = _split(self.config)
        self.log(f"checking {len(train_samples)} training and {len(val_samples)} validation scenes")
        validate_samples([*train_samples, *val_samples])
        if self.dist.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            write_json(self.run_dir / "split.json", {
                "train": [s.id for s in train_samples], "val": [s.id for s in val_samples],
                "data": str(self.config.data), "val_source": str(self.config.val) if self.config.val else
                f"{self.config.val_fraction} of data, seed {self.config.seed}"})
            write_json(self.run_dir / "config.json", self.config.to_dict())
        transform = build_train_transform(AugmentConfig(crop=self.config.crop))
        return SeededAugmentation(RoadDataset(train_samples), transform, self.config.seed), val_samples

    def _build_model(self) -> NLLinkNet:
        cfg = self.config
        if self._resumed is not None:
            model = self._resumed.model.train()
        else:
            model = build_model(cfg.arch, pairwise=cfg.pairwise, encoder_weights=cfg.encoder_weights)  # type: ignore[arg-type]
        model = model.to(self.device)
        if cfg.channels_last:
            model = model.to(memory_format=torch.channels_last)
        return model

    # -- checkpoints ------------------------------------------------------------------------
    def _save(self, path: Path, model: NLLinkNet, state: _State, extra: dict[str, Any] | None) -> Path:
        return save_checkpoint(path, model, training_config=self.config.to_dict(), epoch=state.epoch,
                               best_metric=state.best_metric, metric_name=self.metric_name, training_state=extra)

    def _training_state(self, state: _State, optimizer: torch.optim.Optimizer, schedule: PlateauSchedule,
                        scaler: torch.amp.GradScaler, best_loss_weights: dict[str, torch.Tensor]) -> dict[str, Any]:
        return {**state.__dict__, "optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(),
                "scaler": scaler.state_dict(), "best_loss_weights": best_loss_weights,
                "rng_cpu": torch.get_rng_state()}

    @property
    def metric_name(self) -> str:
        return METRIC_VAL if self._has_val else METRIC_LOSS

    # -- the loop ---------------------------------------------------------------------------
    def fit(self) -> TrainResult:
        """Train until ``epochs``, ``max_steps`` or the early stop; return what was written."""
        try:
            return self._fit()
        finally:
            shutdown(self.dist)

    def _fit(self) -> TrainResult:
        cfg, main = self.config, self.dist.is_main
        train_data, val_samples = self._prepare_data()
        self._has_val = bool(val_samples)
        torch.manual_seed(cfg.seed)  # the same seed gives the same initial weights
        model = self._build_model()
        net: torch.nn.Module = DistributedDataParallel(model) if self.dist.enabled else model
        optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
        criterion = RoadLoss(cfg.loss)  # type: ignore[arg-type]
        scaler = torch.amp.GradScaler(self.device.type, enabled=self.use_amp)
        schedule = PlateauSchedule(cfg.lr, cfg.lr_factor, cfg.plateau_patience, cfg.early_stop_patience, cfg.min_lr)
        state = _State()
        best_loss_weights = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        if self.resume:
            saved = load_training_state(self.resume)
            optimizer.load_state_dict(saved["optimizer"])
            schedule.load_state_dict(saved["schedule"])
            if not restore_scaler(scaler, saved["scaler"]) and self.use_amp:
                self.log("the resumed run trained without AMP: starting a fresh gradient scaler")
            best_loss_weights = saved["best_loss_weights"]
            for key in _State.__dataclass_fields__:
                setattr(state, key, saved[key])
            torch.set_rng_state(saved["rng_cpu"])
            self.log(f"resuming {self.resume} at epoch {state.epoch}, step {state.global_step}")

        steps_per_epoch = -(-len(EpochSampler(len(train_data), seed=cfg.seed, epoch=0, rank=self.dist.rank,
                                              world_size=self.dist.world_size)) // cfg.batch_size)
        total_steps = min(cfg.max_steps or 10**12, cfg.epochs * steps_per_epoch)
        normalize = model.config.normalization
        history: list[dict[str, Any]] = []
        stopped_early = False
        last = self.run_dir / "last.pt"
        best = self.run_dir / "best.pt"
        progress = _progress_bar(main and self.show_progress, total_steps, state.global_step)

        with progress as bar:
            while state.epoch < cfg.epochs and state.global_step < total_steps:
                train_data.set_epoch(state.epoch)
                sampler = EpochSampler(len(train_data), seed=cfg.seed, epoch=state.epoch, rank=self.dist.rank,
                                       world_size=self.dist.world_size, skip=state.step_in_epoch * cfg.batch_size)
                loader = DataLoader(train_data, batch_size=cfg.batch_size, sampler=sampler,
                                    num_workers=cfg.workers, pin_memory=self.device.type == "cuda")
                net.train()
                started, images_seen = time.perf_counter(), 0
                for images, masks in loader:
                    images = images.to(self.device, non_blocking=True)
                    masks = masks.to(self.device, non_blocking=True)
                    if cfg.channels_last:
                        images = images.contiguous(memory_format=torch.channels_last)
                    with torch.autocast(self.device.type, dtype=torch.float16, enabled=self.use_amp):
                        logits = net(normalize.apply(images))
                    loss = criterion(logits.float(), masks)
                    optimizer.zero_grad(set_to_none=True)
                    scaler.scale(loss).backward()
                    scaler.step(optimizer)
                    scaler.update()
                    state.global_step += 1
                    state.step_in_epoch += 1
                    state.epoch_loss_sum += float(loss.detach())
                    state.epoch_batches += 1
                    images_seen += images.shape[0]
                    bar.update(loss=state.epoch_loss_sum / state.epoch_batches,
                               rate=images_seen * self.dist.world_size / (time.perf_counter() - started))
                    if state.global_step >= total_steps:
                        break
                epoch_done = state.step_in_epoch >= steps_per_epoch
                row: dict[str, Any] = {"epoch": state.epoch, "global_step": state.global_step,
                                       "lr": optimizer.param_groups[0]["lr"], "epoch_complete": epoch_done}
                epoch_loss = mean_across_ranks(state.epoch_loss_sum / max(1, state.epoch_batches), self.dist,
                                               self.device)
                row["train_loss"] = epoch_loss
                row["seconds"] = time.perf_counter() - started
                row["images_per_second"] = images_seen * self.dist.world_size / max(row["seconds"], 1e-9)
                improved_metric = False
                if epoch_done:
                    action = schedule.step(epoch_loss)
                    row["action"] = action
                    if action == "improved":
                        best_loss_weights = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
                    elif action == "reduce_lr":
                        model.load_state_dict(best_loss_weights)
                        for group in optimizer.param_groups:
                            group["lr"] = schedule.lr
                        self.log(f"epoch {state.epoch}: loss plateau, reloaded the best weights, "
                                 f"lr -> {schedule.lr:.2e}")
                    stopped_early = action == "stop"
                    if not self._has_val:
                        improved_metric = action == "improved"
                        if improved_metric:
                            state.best_metric = epoch_loss
                if main and self._has_val:
                    scores = self._validate(model, val_samples)
                    row.update({METRIC_VAL: scores.mean_iou, "val_pooled_iou": scores.pooled_iou})
                    if state.best_metric is None or scores.mean_iou > state.best_metric:
                        state.best_metric, improved_metric = scores.mean_iou, True
                if epoch_done:
                    state.epoch += 1
                    state.step_in_epoch = 0
                    state.epoch_loss_sum, state.epoch_batches = 0.0, 0
                if main:
                    if improved_metric or not best.exists():
                        self._save(best, model, state, None)
                    self._save(last, model, state,
                               self._training_state(state, optimizer, schedule, scaler, best_loss_weights))
                    with (self.run_dir / "metrics.jsonl").open("a") as f:
                        f.write(json.dumps(row) + "\n")
                    self.log(_describe_row(row))
                history.append(row)
                barrier(self.dist)
                if broadcast_flag(stopped_early, self.dist, self.device):
                    self.log(f"early stop after epoch {state.epoch - 1}: no lower loss for "
                             f"{schedule.epochs_without_improvement} epochs")
                    break

        return TrainResult(run_dir=self.run_dir, last=last, best=best, global_step=state.global_step,
                           epochs_completed=state.epoch, best_metric=state.best_metric,
                           metric_name=self.metric_name, history=history, stopped_early=stopped_early,
                           is_main=main)

    def _validate(self, model: NLLinkNet, samples: list[Sample]):
        """Validation IoU with the inference pipeline (no TTA), leaving the model in training mode."""
        try:
            pipeline = InferencePipeline(TorchBackend(model, device=str(self.device)), PipelineConfig())
            return evaluate_samples(pipeline, samples)
        finally:
            model.train()


def _describe_row(row: dict[str, Any]) -> str:
    text = f"epoch {row['epoch']} step {row['global_step']}: loss {row['train_loss']:.4f}, lr {row['lr']:.2e}"
    if METRIC_VAL in row:
        text += f", val IoU {row[METRIC_VAL]:.4f} (pooled {row['val_pooled_iou']:.4f})"
    return text + f", {row['images_per_second']:.1f} img/s"


class _NoBar:
    """Stands in for the progress bar on non-main ranks or when progress is off."""

    def __enter__(self) -> _NoBar:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, **fields: float) -> None:
        return None


class _StepBar(_NoBar):
    """A rich progress bar over optimizer steps showing the running loss and images/s."""

    def __init__(self, total: int, done: int) -> None:
        self.progress = progress_bar("loss {task.fields[loss]:.4f}  {task.fields[rate]:.1f} img/s", remaining=True)
        self.task = self.progress.add_task("train", total=total, completed=done, loss=float("nan"), rate=0.0)

    def __enter__(self) -> _StepBar:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(None, None, None)

    def update(self, **fields: Any) -> None:
        self.progress.update(self.task, advance=1, **fields)


def _progress_bar(enabled: bool, total: int, done: int) -> _NoBar:
    return _StepBar(total, done) if enabled else _NoBar()
