"""The training loop: the paper's recipe on CPU or CUDA, one process or many (torchrun, DDP).

An epoch is a number of crops drawn in proportion to image area (:mod:`nltool.training.sampling`);
the paper's plateau schedule runs on those epochs. A run folder holds ``config.json`` (the
resolved options), ``split.json`` (which scenes trained and validated, and what an epoch is),
``metrics.jsonl`` (a row at every epoch end and every validation), ``last.pt`` (weights plus
everything ``--resume`` needs) and ``best.pt`` (best validation IoU, or lowest epoch loss without
validation data). Both checkpoints are written atomically, so a crash never leaves a corrupt one.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Callable, Iterator
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
from nltool.models import NLLinkNet, load_checkpoint, load_training_state, save_checkpoint
from nltool.progress import progress_bar
from nltool.training.augment import AugmentConfig, build_train_transform
from nltool.training.config import TrainConfig
from nltool.training.dataset import RoadDataset
from nltool.training.distributed import DistInfo, barrier, broadcast_flag, init_distributed, mean_across_ranks, shutdown
from nltool.training.finetune import EncoderFreeze, initial_model
from nltool.training.losses import RoadLoss
from nltool.training.sampling import EpochPlan, SeededAugmentation
from nltool.training.schedule import PlateauSchedule

METRIC_VAL = "val_mean_iou"
METRIC_LOSS = "train_loss"
RESUMABLE_OVERRIDES = ("out", "epochs", "max_steps", "workers", "device")
"""Options a resumed run may change; everything else comes from the run being resumed."""


@dataclass
class TrainResult:
    """Where a run wrote its files, how long its epochs were and why it ended."""

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
    stop_reason: str = "max_steps"
    """``max_steps`` (the budget), ``epochs`` (the epoch cap), ``early_stop`` or ``min_lr`` (the schedule)."""
    stop_message: str = ""
    samples_per_epoch: int = 0
    steps_per_epoch: int = 0
    effective_batch_size: int = 0


@dataclass
class _State:
    """Counters and accumulators that ``--resume`` restores."""

    epoch: int = 0
    step_in_epoch: int = 0
    global_step: int = 0
    epoch_loss_sum: float = 0.0
    epoch_batches: int = 0
    best_metric: float | None = None


@dataclass
class _Window:
    """Loss and throughput since the last metrics row."""

    started: float = field(default_factory=time.perf_counter)
    images: int = 0


@dataclass
class _Run:
    """The objects of one fit that every step and every metrics row touch."""

    model: NLLinkNet
    net: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    criterion: RoadLoss
    schedule: PlateauSchedule
    freeze: EncoderFreeze
    plan: EpochPlan
    state: _State
    best_loss_weights: dict[str, torch.Tensor]
    history: list[dict[str, Any]] = field(default_factory=list)


def _cpu_copy(model: NLLinkNet) -> dict[str, torch.Tensor]:
    """A detached CPU copy of the model's weights (the best-loss weights the schedule reloads)."""
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


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
    known = {k: v for k, v in stored.items() if k in TrainConfig.__dataclass_fields__}
    base = TrainConfig.from_dict(known, source="the configuration of the run being resumed")
    return replace(base, **{k: getattr(config, k) for k in RESUMABLE_OVERRIDES})


class Trainer:
    """Runs one training job; construct, then call :meth:`fit`."""

    def __init__(self, config: TrainConfig, *, resume: Path | None = None,
                 log: Callable[[str], None] = print, show_progress: bool = True) -> None:
        self.resume = resume
        self._resumed = load_checkpoint(resume) if resume else None
        self.config = _resumed_config(config, self._resumed.metadata.training_config) if self._resumed else config
        self.show_progress = show_progress
        self.device = resolve_device(self.config.device).to_torch()
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
    def _prepare_data(self) -> tuple[SeededAugmentation, list[Sample], EpochPlan]:
        cfg = self.config
        train_samples, val_samples = _split(cfg)
        self.log(f"checking {len(train_samples)} training and {len(val_samples)} validation scenes")
        sizes = validate_samples([*train_samples, *val_samples])[: len(train_samples)]
        plan = EpochPlan.build([h * w for h, w in sizes], samples=cfg.samples_per_epoch, crop=cfg.crop,
                               batch_size=cfg.batch_size, accumulate=cfg.accumulate, world_size=self.dist.world_size)
        self.log(f"an epoch is {plan.samples} crops of {cfg.crop}² ({plan.coverage(cfg.crop):.1f}× the training "
                 f"pixels{', the default' if plan.default else ''}) = {plan.steps_per_epoch} steps; effective batch "
                 f"size {plan.effective_batch_size} = {cfg.batch_size} × {cfg.accumulate} accumulated × "
                 f"{self.dist.world_size} process(es)")
        if self.dist.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            write_json(self.run_dir / "split.json", {
                "train": [s.id for s in train_samples], "val": [s.id for s in val_samples],
                "data": str(cfg.data), "val_source": str(cfg.val) if cfg.val else
                f"{cfg.val_fraction} of data, seed {cfg.seed}", "epoch": plan.to_dict(cfg.crop)})
            write_json(self.run_dir / "config.json", cfg.to_dict())
        transform = build_train_transform(AugmentConfig(crop=cfg.crop))
        return SeededAugmentation(RoadDataset(train_samples), transform, cfg.seed), val_samples, plan

    def initial_model(self) -> NLLinkNet:
        """The model training starts from (the resumed run's, ``--init``'s or a fresh one), on the device."""
        cfg = self.config
        model = self._resumed.model.train() if self._resumed is not None else initial_model(cfg)
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
        """Train until ``max_steps``, ``epochs`` or the schedule's stop; return what was written and why."""
        try:
            return self._fit()
        finally:
            shutdown(self.dist)

    def _fit(self) -> TrainResult:
        """Epoch after epoch until a stop reason; then the closing line and the result."""
        cfg = self.config
        train_data, val_samples, plan = self._prepare_data()
        self._has_val = bool(val_samples)
        run = self._start(plan)
        total_steps = min(cfg.max_steps or 10**12, cfg.epochs * plan.steps_per_epoch)
        stop_reason = ""
        with _progress_bar(self.dist.is_main and self.show_progress, total_steps, run.state.global_step) as bar:
            while not stop_reason:
                if run.state.epoch >= cfg.epochs:
                    stop_reason = "epochs"
                    break
                stop_reason = self._train_epoch(run, train_data, val_samples, bar)
        message = _stop_message(stop_reason, cfg, run.schedule, run.state)
        self.log(message)
        state = run.state
        return TrainResult(run_dir=self.run_dir, last=self._last, best=self._best, global_step=state.global_step,
                           epochs_completed=state.epoch, best_metric=state.best_metric,
                           metric_name=self.metric_name, history=run.history,
                           stopped_early=stop_reason in ("early_stop", "min_lr"), is_main=self.dist.is_main,
                           stop_reason=stop_reason, stop_message=message, samples_per_epoch=plan.samples,
                           steps_per_epoch=plan.steps_per_epoch, effective_batch_size=plan.effective_batch_size)

    @property
    def _last(self) -> Path:
        """The checkpoint ``--resume`` continues from."""
        return self.run_dir / "last.pt"

    @property
    def _best(self) -> Path:
        """The best checkpoint by the run's metric."""
        return self.run_dir / "best.pt"

    def _start(self, plan: EpochPlan) -> _Run:
        """Model, optimizer and schedule, fresh or restored from ``--resume``."""
        cfg = self.config
        torch.manual_seed(cfg.seed)  # the same seed gives the same initial weights
        model = self.initial_model()
        scaler = torch.amp.GradScaler(self.device.type, enabled=self.use_amp)
        run = _Run(model=model, net=DistributedDataParallel(model) if self.dist.enabled else model,
                   optimizer=torch.optim.Adam(model.parameters(), lr=cfg.lr), scaler=scaler,
                   criterion=RoadLoss(cfg.loss),  # type: ignore[arg-type]
                   schedule=PlateauSchedule(cfg.lr, cfg.lr_factor, cfg.plateau_patience, cfg.early_stop_patience,
                                            cfg.min_lr),
                   freeze=EncoderFreeze(model, cfg.freeze_encoder_steps), plan=plan, state=_State(),
                   best_loss_weights=_cpu_copy(model))
        if self.resume:
            saved = load_training_state(self.resume)
            run.optimizer.load_state_dict(saved["optimizer"])
            run.schedule.load_state_dict(saved["schedule"])
            if not restore_scaler(run.scaler, saved["scaler"]) and self.use_amp:
                self.log("the resumed run trained without AMP: starting a fresh gradient scaler")
            run.best_loss_weights = saved["best_loss_weights"]
            for key in _State.__dataclass_fields__:
                setattr(run.state, key, saved[key])
            torch.set_rng_state(saved["rng_cpu"])
            self.log(f"resuming {self.resume} at epoch {run.state.epoch}, step {run.state.global_step}")
        elif cfg.init is not None:
            self.log(f"starting from the weights of {cfg.init} (fresh optimizer and schedule)")
        return run

    def _train_epoch(self, run: _Run, train_data: SeededAugmentation, val_samples: list[Sample], bar: _NoBar) -> str:
        """Train the rest of the current epoch; returns why the run must stop, or "" to go on."""
        cfg, state = self.config, run.state
        train_data.set_epoch(state.epoch)
        sampler = run.plan.sampler(seed=cfg.seed, epoch=state.epoch, rank=self.dist.rank,
                                   skip_steps=state.step_in_epoch)
        batches = iter(DataLoader(train_data, batch_size=cfg.batch_size, sampler=sampler, num_workers=cfg.workers,
                                  pin_memory=self.device.type == "cuda"))
        window = _Window()
        while True:
            step = state.global_step
            run.freeze.train_mode(step)
            n_batches = run.plan.batches_in_step(state.step_in_epoch)
            loss_sum, images = self._step(run, batches, n_batches, step)
            state.global_step += 1
            state.step_in_epoch += 1
            state.epoch_loss_sum += loss_sum
            state.epoch_batches += n_batches
            window.images += images
            bar.update(loss=state.epoch_loss_sum / state.epoch_batches,
                       rate=window.images * self.dist.world_size / (time.perf_counter() - window.started))
            epoch_done = state.step_in_epoch >= run.plan.steps_per_epoch
            stop_reason, window = self._after_step(run, val_samples, window, epoch_done, run.freeze.active(step))
            if stop_reason or epoch_done:
                return stop_reason

    def _after_step(self, run: _Run, val_samples: list[Sample], window: _Window, epoch_done: bool,
                    frozen: bool) -> tuple[str, _Window]:
        """Schedule at an epoch's end, validate when due, write a metrics row and checkpoints when anything
        happened; returns why the run must stop ("" to go on) and the throughput window to continue."""
        cfg, state = self.config, run.state
        row: dict[str, Any] = {"epoch": state.epoch, "global_step": state.global_step,
                               "lr": run.optimizer.param_groups[0]["lr"], "epoch_complete": epoch_done}
        if frozen:
            row["encoder_frozen"] = True
        stop_reason, improved = self._apply_schedule(run, row) if epoch_done else ("", False)
        if not stop_reason and state.global_step >= (cfg.max_steps or 10**12):
            stop_reason = "max_steps"
        if not stop_reason and epoch_done and state.epoch + 1 >= cfg.epochs:
            stop_reason = "epochs"
        due = state.global_step % cfg.val_every == 0 if cfg.val_every and self._has_val else epoch_done
        if not (epoch_done or due or stop_reason):
            return "", window
        if "train_loss" not in row:  # a row mid-epoch: the epoch's mean loss so far
            row["train_loss"] = mean_across_ranks(state.epoch_loss_sum / state.epoch_batches, self.dist, self.device)
        row["seconds"] = time.perf_counter() - window.started
        row["images_per_second"] = window.images * self.dist.world_size / max(row["seconds"], 1e-9)
        if self.dist.is_main and self._has_val and (due or stop_reason):
            scores = self._validate(run.model, val_samples)
            row.update({METRIC_VAL: scores.mean_iou, "val_pooled_iou": scores.pooled_iou})
            if state.best_metric is None or scores.mean_iou > state.best_metric:
                state.best_metric, improved = scores.mean_iou, True
        if epoch_done:
            state.epoch += 1
            state.step_in_epoch = 0
            state.epoch_loss_sum, state.epoch_batches = 0.0, 0
        self._record(run, row, improved)
        if broadcast_flag(bool(stop_reason), self.dist, self.device) and not stop_reason:
            stop_reason = run.schedule.stop_reason or "early_stop"
        return stop_reason, _Window()

    def _apply_schedule(self, run: _Run, row: dict[str, Any]) -> tuple[str, bool]:
        """The plateau rule on the finished epoch's loss; returns (stop reason or "", whether best.pt improved)."""
        state = run.state
        row["train_loss"] = mean_across_ranks(state.epoch_loss_sum / state.epoch_batches, self.dist, self.device)
        action = row["action"] = run.schedule.step(row["train_loss"])
        if action == "improved":
            run.best_loss_weights = _cpu_copy(run.model)
            if not self._has_val:
                state.best_metric = row["train_loss"]
                return "", True
        elif action == "reduce_lr":
            run.model.load_state_dict(run.best_loss_weights)
            for group in run.optimizer.param_groups:
                group["lr"] = run.schedule.lr
            self.log(f"epoch {state.epoch}: loss plateau, reloaded the best weights, lr -> {run.schedule.lr:.2e}")
        elif action == "stop":
            return run.schedule.stop_reason or "early_stop", False
        return "", False

    def _record(self, run: _Run, row: dict[str, Any], improved: bool) -> None:
        """Write best.pt (when improved), last.pt and the metrics row (main process), and keep the row."""
        if self.dist.is_main:
            if improved or not self._best.exists():
                self._save(self._best, run.model, run.state, None)
            self._save(self._last, run.model, run.state,
                       self._training_state(run.state, run.optimizer, run.schedule, run.scaler,
                                            run.best_loss_weights))
            with (self.run_dir / "metrics.jsonl").open("a") as f:
                f.write(json.dumps(row) + "\n")
            self.log(_describe_row(row))
        run.history.append(row)
        barrier(self.dist)

    def _step(self, run: _Run, batches: Iterator[tuple[torch.Tensor, torch.Tensor]], n_batches: int,
              step: int) -> tuple[float, int]:
        """Optimizer step ``step`` over ``n_batches`` accumulated batches; returns (sum of their losses, images)."""
        cfg, net = self.config, run.net
        normalize = run.model.config.normalization
        run.optimizer.zero_grad(set_to_none=True)
        loss_sum, images_seen = 0.0, 0
        for index in range(n_batches):
            images, masks = next(batches)
            images = images.to(self.device, non_blocking=True)
            masks = masks.to(self.device, non_blocking=True)
            if cfg.channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            last_batch = index == n_batches - 1
            # DDP: average gradients across processes once per step, not after every accumulated batch.
            sync = net.no_sync() if isinstance(net, DistributedDataParallel) and not last_batch \
                else contextlib.nullcontext()
            with sync:
                with torch.autocast(self.device.type, dtype=torch.float16, enabled=self.use_amp):
                    logits = net(normalize.apply(images))
                loss = run.criterion(logits.float(), masks)
                run.scaler.scale(loss / n_batches).backward()
            loss_sum += float(loss.detach())
            images_seen += images.shape[0]
        run.freeze.drop_gradients(step)
        run.scaler.step(run.optimizer)
        run.scaler.update()
        return loss_sum, images_seen

    def _validate(self, model: NLLinkNet, samples: list[Sample]):
        """Validation IoU with the inference pipeline (no TTA); the caller restores training mode."""
        pipeline = InferencePipeline(TorchBackend(model, device=str(self.device)), PipelineConfig())
        return evaluate_samples(pipeline, samples)


def _stop_message(reason: str, config: TrainConfig, schedule: PlateauSchedule, state: _State) -> str:
    """The closing line: why the run ended, in the words of the option that ended it."""
    if reason == "max_steps":
        return f"stopped: reached --max-steps {config.max_steps} (epoch {state.epoch}, step {state.global_step})"
    if reason == "epochs":
        return f"stopped: completed --epochs {config.epochs} ({state.global_step} steps)"
    return f"stopped early after epoch {state.epoch - 1} (step {state.global_step}): {schedule.describe_stop()}"


def _describe_row(row: dict[str, Any]) -> str:
    """One log line for a metrics row."""
    so_far = "" if row["epoch_complete"] else " (epoch so far)"
    text = f"epoch {row['epoch']} step {row['global_step']}: loss {row['train_loss']:.4f}{so_far}, lr {row['lr']:.2e}"
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
