"""``nltool demo``: the whole product on built-in synthetic roads, in one command, on a CPU.

Stages: synthesize a road dataset -> train NL34-LinkNet briefly -> evaluate on held-out scenes
(with a figure per scene) -> export ONNX and INT8 with parity -> package a ``.mar`` -> start
TorchServe on free loopback ports, request a held-out scene's mask over REST and check it equals
the local pipeline's -> stop the server -> write ``report.md``/``report.json``.

Like ``cli.py``, this module drives the stages (training/, export/, serving/), so it imports them
inside the functions that need them; the rest of ``nltool/`` never does. The server is stopped
when the demo ends in any way, Ctrl-C and SIGTERM included.
"""

from __future__ import annotations

import shutil
import signal
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from nltool import __version__
from nltool.devices import AUTO_DEVICE
from nltool.errors import NltoolError
from nltool.fileio import atomic_path, write_json
from nltool.inference.config import TTAMode
from nltool.optional import EXTRAS, available

MARKER = ".nltool-demo"
"""A file naming a folder as the demo's own, so ``--force`` never empties anything else."""
MODEL_NAME = "nllinknet"


class DemoError(NltoolError):
    """The demo cannot run here (a missing extra or tool, an output folder in the way)."""


@dataclass(frozen=True)
class DemoConfig:
    """The demo's sizes: the default run, or the ``--quick`` one that the tests run."""

    train_scenes: int = 64
    val_scenes: int = 16
    size: int = 256
    steps: int = 224
    crop: int = 256
    batch_size: int = 4
    tta: TTAMode = "d4"
    arch: str = "nl34-linknet"


QUICK = DemoConfig(train_scenes=8, val_scenes=3, size=128, steps=6, crop=128)


@dataclass
class StageResult:
    """One row of the report's table."""

    stage: str
    result: str
    seconds: float


@dataclass
class DemoReport:
    """Everything the demo measured; ``report.json`` is this as JSON."""

    out: Path
    config: DemoConfig
    stages: list[StageResult] = field(default_factory=list)
    numbers: dict[str, Any] = field(default_factory=dict)
    figures: list[str] = field(default_factory=list)

    @property
    def report_md(self) -> Path:
        return self.out / "report.md"

    @property
    def report_json(self) -> Path:
        return self.out / "report.json"


Echo = Callable[[str], None]


def check_requirements() -> None:
    """Refuse at once, naming what to install, if a stage's extra or tool is missing."""
    missing = sorted({EXTRAS[module] for module in ("onnxruntime", "ts", "requests", "grpc")
                      if not available(module)})
    if missing:
        raise DemoError(f"the demo exports ONNX and serves it with TorchServe; install the extras it needs: "
                        f"pip install -e '.[demo]' (missing: {', '.join(missing)})")
    for tool, hint in (("torch-model-archiver", "pip install -e '.[demo]'"),
                       ("torchserve", "pip install -e '.[demo]'"),
                       ("java", "install a Java 17 runtime (TorchServe's frontend is Java), e.g. apt install "
                                "openjdk-17-jre-headless")):
        if shutil.which(tool) is None:
            raise DemoError(f"{tool} is not on the PATH: {hint}")


def prepare_out(out: Path, force: bool) -> None:
    """Create ``out``; an existing non-empty folder is replaced only with ``force`` and only if it
    is an earlier demo's (it holds the marker file)."""
    if out.exists() and not out.is_dir():
        raise DemoError(f"{out} is a file; choose another --out")
    if out.is_dir() and any(out.iterdir()):
        if not force:
            raise DemoError(f"{out} is not empty; pass --force to replace an earlier demo there, or choose --out")
        if not (out / MARKER).exists():
            raise DemoError(f"{out} is not empty and was not written by nltool demo; refusing to delete it")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text(f"written by nltool {__version__} demo\n")


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM into KeyboardInterrupt for the block, so cleanup (stopping TorchServe) runs."""
    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class _Stages:
    """Numbers the stages, announces each, times it and records its row."""

    def __init__(self, report: DemoReport, echo: Echo, total: int) -> None:
        self.report, self.echo, self.total, self.index = report, echo, total, 0

    @contextmanager
    def stage(self, name: str) -> Iterator[list[str]]:
        self.index += 1
        self.echo(f"[{self.index}/{self.total}] {name} ...")
        started = time.perf_counter()
        result: list[str] = []
        yield result
        seconds = time.perf_counter() - started
        self.report.stages.append(StageResult(name, "; ".join(result), seconds))
        self.echo(f"[{self.index}/{self.total}] {name}: {'; '.join(result)} ({seconds:.1f} s)")


def run_demo(out: Path, *, quick: bool = False, force: bool = False, device: str = AUTO_DEVICE,
             echo: Echo = print, show_progress: bool = True) -> DemoReport:
    """Run every stage into ``out`` and write the report; returns what it measured."""
    check_requirements()
    prepare_out(out, force)
    config = QUICK if quick else DemoConfig()
    report = DemoReport(out=out, config=config)
    stages = _Stages(report, echo, total=7)
    with sigterm_as_interrupt():
        train_dir, val_dir = _synthesize(stages, out, config)
        checkpoint = _train(stages, out, config, train_dir, val_dir, device, echo, show_progress)
        _evaluate(stages, report, checkpoint, val_dir, device)
        onnx_path = _export(stages, report, out, checkpoint, train_dir, echo)
        store, ports, settings = _package(stages, out, onnx_path, config)
        _serve(stages, report, out, (store, ports, settings), onnx_path, val_dir)
    _write_report(stages, report)
    return report


def _synthesize(stages: _Stages, out: Path, config: DemoConfig) -> tuple[Path, Path]:
    from nltool.data.synth import SynthConfig, write_synthetic_dataset

    with stages.stage("synthesize road scenes") as result:
        train_dir, val_dir = out / "data" / "train", out / "data" / "heldout"
        write_synthetic_dataset(train_dir, SynthConfig(n=config.train_scenes, size=config.size, seed=0))
        write_synthetic_dataset(val_dir, SynthConfig(n=config.val_scenes, size=config.size, seed=1))
        stages.report.numbers["data"] = {"train_scenes": config.train_scenes, "heldout_scenes": config.val_scenes,
                                         "size": config.size}
        result.append(f"{config.train_scenes} training + {config.val_scenes} held-out scenes of "
                      f"{config.size}×{config.size} in {out / 'data'}")
    return train_dir, val_dir


def _train(stages: _Stages, out: Path, config: DemoConfig, train_dir: Path, val_dir: Path, device: str,
           echo: Echo, show_progress: bool) -> Path:
    from nltool.training.config import TrainConfig
    from nltool.training.trainer import Trainer

    with stages.stage(f"train {config.arch}") as result:
        # One pass over the scenes an epoch (crop = scene size), so the report's curve has a point per pass.
        train = TrainConfig(data=train_dir, val=val_dir, out=out / "run", arch=config.arch, encoder_weights="none",
                            crop=config.crop, batch_size=config.batch_size, max_steps=config.steps, workers=1,
                            device=device, samples_per_epoch=config.train_scenes)
        done = Trainer(train, log=echo, show_progress=show_progress).fit()
        best = max(done.history, key=lambda row: row["val_mean_iou"])
        stages.report.numbers["train"] = {
            "arch": config.arch, "steps": done.global_step, "epochs": done.epochs_completed,
            "best_val_iou": done.best_metric, "best_step": best["global_step"], "checkpoint": str(done.best),
            "curve": [{"step": row["global_step"], "val_iou": row["val_mean_iou"], "loss": row["train_loss"]}
                      for row in done.history]}
        result.append(f"{done.global_step} steps from scratch, best held-out IoU {done.best_metric:.3f} "
                      f"at step {best['global_step']}; {done.best}")
    return done.best


def _evaluate(stages: _Stages, report: DemoReport, checkpoint: Path, val_dir: Path, device: str) -> None:
    from nltool.app.figures import save_figure, scene_figure
    from nltool.data.deepglobe import find_pairs
    from nltool.evaluation import run_evaluation
    from nltool.inference import InferencePipeline, PipelineConfig, load_backend

    with stages.stage(f"evaluate with {report.config.tta} TTA") as result:
        pipeline = InferencePipeline(load_backend(checkpoint, device=device), PipelineConfig(tta=report.config.tta))

        def draw(sample: Any, rgb: Any, truth: Any, mask: Any) -> None:
            figure = scene_figure(rgb, truth, mask, title=sample.id)
            path = save_figure(figure, report.out / "figures" / f"{sample.id}.png")
            report.figures.append(str(path.relative_to(report.out)))

        scores = run_evaluation(pipeline, find_pairs(val_dir), val_dir, report.out / "eval.json", on_mask=draw)
        mean, pooled = scores["mean_iou_per_image"]["value"], scores["pooled_iou"]["value"]
        report.numbers["evaluate"] = {"mean_iou_per_image": mean, "pooled_iou": pooled, "tta": report.config.tta,
                                      "per_image": scores["per_image"]}
        result.append(f"mean IoU per image {mean:.3f}, pooled IoU {pooled:.3f} on {scores['n_images']} held-out "
                      f"scenes; figures in {report.out / 'figures'}")


def _export(stages: _Stages, report: DemoReport, out: Path, checkpoint: Path, train_dir: Path, echo: Echo) -> Path:
    from nltool.export.artifacts import ExportRequest, export_artifacts
    from nltool.export.int8_auto import AUTO
    from nltool.export.onnx_export import Int8GateError

    with stages.stage("export ONNX + INT8, check parity") as result:
        request = ExportRequest(checkpoint=checkpoint, out=out / "artifacts", int8=True, calib=train_dir,
                                int8_keep_float=AUTO)
        int8_gate: str | None = None
        try:
            done = export_artifacts(request, log=echo)
        except Int8GateError as exc:  # a briefly trained model on a CPU without VNNI may miss it: go on in FP32
            int8_gate = str(exc)
            echo(f"{int8_gate}\nThe demo serves the FP32 ONNX either way: exporting it without INT8.")
            done = export_artifacts(replace(request, int8=False), log=echo)
        report.numbers["export"] = {r.precision: {"artifact": r.artifact, "max_abs": r.max_abs,
                                                  "min_mask_iou": r.min_mask_iou, "passed": r.passed,
                                                  "tolerance": asdict(r.tolerance),
                                                  **({"keep_float": r.quantization["keep_float"]}
                                                     if r.quantization else {})} for r in done.reports}
        for r in done.reports:
            verdict = "pass" if r.passed else f"FAIL ({r.failure()})"
            result.append(f"{r.precision.upper()} max abs Δprob {r.max_abs:.1e}, "
                          f"mask IoU {r.min_mask_iou:.4f}: {verdict}")
        if int8_gate is not None:
            report.numbers["export"]["int8"] = {"written": False, "gate": int8_gate}
            result.append("INT8 not written: no --int8-keep-float choice held mask IoU 0.98 vs FP32 on this CPU "
                          "(report.json says what each measured)")
    return out / "artifacts" / "model.onnx"


def _package(stages: _Stages, out: Path, onnx_path: Path, config: DemoConfig) -> tuple[Path, Any, Any]:
    from nltool.inference import PipelineConfig
    from nltool.serving.package import package_model
    from nltool.serving.server import free_ports
    from nltool.serving.settings import ServingSettings

    with stages.stage("package a TorchServe archive") as result:
        settings = ServingSettings(pipeline=PipelineConfig(tta=config.tta))
        ports = free_ports()
        done = package_model(onnx_path, out / "model_store", name=MODEL_NAME, settings=settings, ports=ports)
        result.append(f"{done.mar} ({done.mar.stat().st_size / 2**20:.1f} MiB), config for free ports "
                      f"{ports.inference} (REST) and {ports.grpc_inference} (gRPC) on 127.0.0.1")
    return out / "model_store", ports, settings


def _serve(stages: _Stages, report: DemoReport, out: Path, packaged: tuple[Path, Any, Any], onnx_path: Path,
           val_dir: Path) -> None:
    import numpy as np
    from PIL import Image

    from nltool.data.deepglobe import find_pairs, read_sample
    from nltool.imagery import open_image
    from nltool.inference import InferencePipeline, load_backend
    from nltool.inference.jobs import write_output
    from nltool.metrics import road_iou
    from nltool.serving.client import RestClient
    from nltool.serving.server import LocalTorchServe

    store, ports, settings = packaged
    with stages.stage("serve with TorchServe and request over REST") as result:
        sample = find_pairs(val_dir)[0]
        served_path = out / "served" / f"{sample.id}_mask.png"
        served_path.parent.mkdir(parents=True, exist_ok=True)
        with LocalTorchServe(store, [MODEL_NAME], out / "serve", ports) as server:
            started = time.perf_counter()
            answer, summary = RestClient(server.url, MODEL_NAME, server.token()).predict_with_summary(
                sample.image.read_bytes())
            latency = time.perf_counter() - started
        served_path.write_bytes(answer)
        pipeline = InferencePipeline(load_backend(onnx_path, device="cpu"), settings.pipeline)
        with open_image(sample.image) as reader, tempfile.TemporaryDirectory() as tmp:
            local = write_output(pipeline, reader, Path(tmp) / "local.png", "png").path.read_bytes()
        truth = read_sample(sample).road
        iou = road_iou(np.asarray(Image.open(served_path)) == 255, truth)
        report.numbers["serve"] = {"scene": sample.id, "url": server.url, "latency_s": latency,
                                   "identical_to_local_pipeline": answer == local, "iou_vs_truth": iou,
                                   "server_summary": summary}
        result.append(f"{sample.id} answered in {latency:.2f} s over REST "
                      f"({'byte-identical to' if answer == local else 'DIFFERENT from'} the local pipeline's mask, "
                      f"IoU {iou:.3f} vs truth); server stopped; {served_path}")


def _write_report(stages: _Stages, report: DemoReport) -> None:
    with stages.stage("write the report") as result:
        data = {"nltool": __version__, "config": asdict(report.config), "stages": [asdict(s) for s in report.stages],
                **report.numbers, "figures": report.figures}
        write_json(report.report_json, data, default=str)
        with atomic_path(report.report_md) as tmp:
            tmp.write_text(_markdown(report))
        result.append(str(report.report_md))


def _markdown(report: DemoReport) -> str:
    numbers = report.numbers
    lines = [f"# nltool demo (nltool {__version__})", "",
             f"NL34-LinkNet trained from scratch for {numbers['train']['steps']} steps on synthetic roads "
             f"({report.config.size}² scenes), on this machine. These are synthetic-data numbers: they show the "
             "product working end to end, not the paper's DeepGlobe accuracy.", "",
             "| stage | result | seconds |", "|---|---|---|"]
    lines += [f"| {s.stage} | {s.result} | {s.seconds:.1f} |" for s in report.stages]
    int8 = numbers["export"].get("int8", {})
    kept = ", ".join(int8.get("keep_float", [])) or "none"
    chose = (f"`--int8-keep-float auto` chose which convolutions stay float ({kept})" if int8.get("written", True) else
             "`--int8-keep-float auto` found no choice that holds it, so no INT8 model was written")
    lines += ["", "The served model is the FP32 ONNX. INT8 parity is judged by mask IoU against the checkpoint "
              f"on synthetic 512² scenes (goal 0.98). {chose}: a briefly trained model leaves more pixels near the "
              "0.5 threshold, where INT8 rounding flips them, and CPUs without VNNI flip more "
              "(docs/performance.md)."]
    lines += ["", "## Held-out scenes", "", "| scene | IoU (checkpoint, "
              f"{numbers['evaluate']['tta']} TTA) |", "|---|---|"]
    lines += [f"| {scene} | {iou:.3f} |" for scene, iou in numbers["evaluate"]["per_image"].items()]
    lines += ["", "Each figure: image | ground truth | prediction in red over the image.", ""]
    lines += [f"![{Path(f).stem}]({f})" for f in report.figures]
    return "\n".join(lines) + "\n"
