"""Every CLI option's default is its owner's: the settings class, dataclass or function that applies it.

The table names each option's owner; an option with a default that is not in the table fails the
test too (unless it owns its default: see OWN_DEFAULT), so a new option cannot bring a new literal.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from enum import Enum
from typing import Any

import pytest
import typer

from nltool.app.cli import app
from nltool.devices import AUTO_DEVICE
from nltool.inference.config import OUTPUT_FORMATS, PipelineConfig
from nltool.training.config import TrainConfig
from nltool.vectors.settings import DEFAULT_PIXEL_SIZE_M, AplsSettings, VectorizeSettings

pytest.importorskip("torch", reason="the export owners (ExportRequest, EngineProfile) import torch")


def default_of(function: Callable[..., Any], parameter: str) -> Any:
    """A function's default for one keyword."""
    return inspect.signature(function).parameters[parameter].default


def owners() -> dict[tuple[str, str], Any]:
    """(command, option) -> the owner's value. Owners that import heavy stacks are imported here only."""
    from nltool.batch.ray_engine import RayOptions
    from nltool.data.synth import SynthConfig
    from nltool.export.artifacts import ExportRequest
    from nltool.export.tensorrt_build import EngineProfile
    from nltool.inference import load_backend
    from nltool.serving.client import BaseClient
    from nltool.serving.kserve import Deployment
    from nltool.serving.oip_options import ServeOptions
    from nltool.serving.package import Ports, package_model
    from nltool.serving.settings import ServingSettings
    from nltool.vectors.io import write_network

    pipeline = PipelineConfig()
    table: dict[tuple[str, str], Any] = {}
    inference = {"tile": pipeline.tile, "overlap": pipeline.overlap, "tta": pipeline.tta,
                 "scales": ",".join(map(str, pipeline.scales)), "threshold": pipeline.threshold,
                 "batch_size": pipeline.batch_size, "max_pixels": pipeline.max_pixels,
                 "backend": default_of(load_backend, "backend"), "precision": default_of(load_backend, "precision"),
                 "device": AUTO_DEVICE}
    without = {"predict": (), "evaluate": ("max_pixels",), "package": ("batch_size", "device"),
               "serve": ("batch_size",)}
    for command, absent in without.items():
        table.update({(command, name): value for name, value in inference.items() if name not in absent})
    table.update({(command, "pixel_size"): DEFAULT_PIXEL_SIZE_M for command in ("predict", "evaluate", "vectorize",
                                                                                "apls")})
    table[("predict", "output_format")] = OUTPUT_FORMATS[0]
    table.update({("predict", name): getattr(RayOptions, name) for name in ("actors", "gpus_per_actor")})
    train_options = ("val_fraction", "arch", "pairwise", "encoder_weights", "freeze_encoder_steps", "epochs", "crop",
                     "batch_size", "accumulate", "lr", "loss", "lr_factor", "plateau_patience",
                     "early_stop_patience", "min_lr", "device", "workers", "seed", "amp", "channels_last")
    table.update({("train", name): getattr(TrainConfig, name) for name in train_options})
    table.update({("data split", name): getattr(TrainConfig, name) for name in ("val_fraction", "seed")})
    table.update({("data synth", name): getattr(SynthConfig, name) for name in ("n", "size", "seed")})
    vectorize = {"threshold": "threshold", "min_object": "min_object_m2", "max_hole": "max_hole_m2", "spur": "spur_m",
                 "gap": "gap_m", "gap_angle": "gap_angle_deg", "min_component": "min_component_m",
                 "simplify": "simplify_m"}
    table.update({("vectorize", option): getattr(VectorizeSettings, name) for option, name in vectorize.items()})
    table[("vectorize", "nodes")] = default_of(write_network, "nodes")
    apls = {"linestring_delta": "linestring_delta_m", "max_snap": "max_snap_dist_m",
            "min_path": "min_path_length_m", "max_control_points": "max_control_points", "seed": "seed",
            "variant": "variant"}
    table.update({("apls", option): getattr(AplsSettings, name) for option, name in apls.items()})
    table[("apls", "threshold")] = VectorizeSettings.threshold
    table[("evaluate", "apls_variant")] = AplsSettings.variant
    table.update({("export", name): getattr(ExportRequest, name)
                  for name in ("onnx", "int8_keep_float", "int8_engine", "opset", "workspace_gib", "device")})
    table.update({("export", name): getattr(EngineProfile, name)
                  for name in ("min_batch", "opt_batch", "max_batch", "min_side", "opt_side", "max_side")})
    serving = ServingSettings()
    table.update({("package", "output_format"): serving.format, ("package", "backend"): serving.backend,
                  ("package", "precision"): serving.precision, ("package", "name"): default_of(package_model, "name"),
                  ("package", "workers"): default_of(package_model, "workers")})
    ports = {"inference_port": "inference", "management_port": "management", "metrics_port": "metrics",
             "grpc_port": "grpc_inference", "grpc_management_port": "grpc_management", "worker_port": "worker"}
    table.update({("package", option): getattr(Ports, name) for option, name in ports.items()})
    table.update({("package", name): getattr(Deployment, name)
                  for name in ("cpu", "memory", "gpus", "min_replicas", "max_replicas")})
    table.update({("serve", name): getattr(ServeOptions, name)
                  for name in ("name", "host", "http_port", "grpc_port", "workers")})
    table[("serve", "output_format")] = serving.format
    table.update({("client", "model_name"): default_of(BaseClient, "model"),
                  ("client", "timeout"): default_of(BaseClient, "timeout"),
                  ("client", "retries"): default_of(BaseClient, "retries"),
                  ("client", "url"): f"http://127.0.0.1:{Ports.inference}",
                  ("demo", "device"): AUTO_DEVICE})
    return table


OWN_DEFAULT = {
    ("predict", "engine"),  # local: a choice of the command itself (ray needs the [ray] extra)
    ("package", "target"),  # torchserve: a choice of the command itself
    ("demo", "out"),  # the demo's folder name
    ("client", "token_file"),  # the name TorchServe gives its key file, in the folder it was started from
}
"""Options whose default belongs to the command alone. None and False (an option left out, a switch
left off) own themselves too."""


def option_defaults() -> Iterator[tuple[str, str, Any]]:
    """(command path, option name, default) for every option of every command that has a default."""
    def walk(command: Any, path: tuple[str, ...]) -> Iterator[tuple[str, str, Any]]:
        if hasattr(command, "commands"):
            for name, sub in command.commands.items():
                yield from walk(sub, (*path, name))
            return
        for param in command.params:
            default = param.default.value if isinstance(param.default, Enum) else param.default
            if default is None or default is False:
                continue
            yield " ".join(path), param.name, default

    yield from walk(typer.main.get_command(app), ())


def test_every_option_default_is_its_owners() -> None:
    table = owners()
    seen = set()
    wrong, unowned = [], []
    for command, option, default in option_defaults():
        key = (command, option)
        seen.add(key)
        if key in OWN_DEFAULT:
            continue
        if key not in table:
            unowned.append(f"{command} --{option} = {default!r}")
            continue
        if default != table[key]:
            wrong.append(f"{command} --{option}: CLI {default!r}, owner {table[key]!r}")
    assert not wrong, "option defaults differ from their owners': " + "; ".join(wrong)
    assert not unowned, "options with a default but no owner in the table: " + "; ".join(unowned)
    stale = sorted((set(table) | OWN_DEFAULT) - seen)
    assert not stale, f"table rows for options without a default or that do not exist: {stale}"


def test_the_walk_sees_every_command() -> None:
    commands = {command for command, _, _ in option_defaults()}
    assert {"predict", "train", "evaluate", "vectorize", "apls", "export", "package", "client", "serve", "demo",
            "data synth", "data split"} <= commands
