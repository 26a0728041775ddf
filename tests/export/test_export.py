"""`nltool export`: ONNX parity for every arch, INT8 QDQ, clear failures with nothing left behind."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from conftest import random_state_dict
from typer.testing import CliRunner

from nltool.app.cli import app
from nltool.inference.backends.onnxruntime_backend import OnnxRuntimeBackend
from nltool.inference.backends.torch_backend import TorchBackend
from nltool.models import build_model, save_checkpoint

pytest.importorskip("onnxruntime", reason="onnxruntime (the [cpu] extra) is not installed")
from nltool.export.onnx_export import ExportError, export_onnx
from nltool.export.parity import ParityCase, measure_parity
from nltool.metrics import road_iou

runner = CliRunner()
SHAPES = [(1, 3, 256, 256), (1, 3, 320, 512), (2, 3, 256, 256)]


def _lively(arch: str, pairwise: str = "embedded_gaussian") -> torch.nn.Module:
    """A random model whose non-local blocks are switched on (fresh ones are the identity)."""
    torch.manual_seed(0)
    model = build_model(arch, pairwise=pairwise).eval()  # type: ignore[arg-type]
    with torch.no_grad():
        for block in (model.encoder.nonlocal3, model.encoder.nonlocal4):
            if block is not None:
                block.W[1].weight.fill_(0.1)
    return model


@pytest.mark.slow
@pytest.mark.parametrize("arch,pairwise", [
    ("linknet", "embedded_gaussian"), ("nl3-linknet", "embedded_gaussian"), ("nl4-linknet", "embedded_gaussian"),
    ("nl34-linknet", "embedded_gaussian"), ("dlinknet", "embedded_gaussian"), ("nl34-linknet", "gaussian"),
    ("nl34-linknet", "dot_product"),
])
def test_onnx_parity_for_every_arch_and_pairwise(arch: str, pairwise: str, tmp_path: Path) -> None:
    model = _lively(arch, pairwise)
    path = export_onnx(model, tmp_path / "m.onnx")
    gen = torch.Generator().manual_seed(1)
    cases = [ParityCase(str(shape), torch.rand(*shape, generator=gen) * 255) for shape in SHAPES]
    report = measure_parity(TorchBackend(model, device="cpu"), OnnxRuntimeBackend(path), str(path), "fp32", cases)
    assert report.max_abs < 1e-4, report.to_dict()
    assert report.passed


@pytest.fixture(scope="module")
def authors_th(authors_keys, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("th") / "NL34_LinkNet.th"
    torch.save(random_state_dict(authors_keys["nl34-linknet"]), path)
    return path


def test_export_cli_from_an_authors_th_writes_onnx_and_parity(authors_th: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = runner.invoke(app, ["export", "--checkpoint", str(authors_th), "--arch", "nl34-linknet",
                                 "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["model.onnx", "parity.json"]
    parity = json.loads((out / "parity.json").read_text())
    assert parity["passed"] is True
    entry = parity["artifacts"]["model.onnx"]
    assert entry["precision"] == "fp32" and entry["max_abs"] < 1e-4 and entry["tolerance"]["max_abs"] == 1e-4
    assert {c["name"] for c in entry["cases"]} >= {"random 1×256×256", "random 1×320×512",
                                                  "synthetic scenes 2×512×512"}
    props = {p.key: p.value for p in onnx.load(out / "model.onnx").metadata_props}
    assert props["arch"] == "nl34-linknet" and len(props["source_checkpoint_sha256"]) == 64
    assert "ok" in result.output


def test_int8_qdq_runs_and_agrees_with_fp32_masks(tmp_path: Path) -> None:
    from PIL import Image

    from nltool.export.quantize import quantize_int8
    from nltool.synthetic import render_scene, scene_rng

    calib = tmp_path / "calib"
    calib.mkdir()
    for i in range(4):
        Image.fromarray(render_scene(256, scene_rng(7, i))[0]).save(calib / f"c{i}_sat.jpg")
    torch.manual_seed(0)
    model = build_model("linknet").eval()
    with torch.no_grad():
        model.decoder.head.conv3.weight.mul_(20)
    fp32 = export_onnx(model, tmp_path / "m.onnx")
    int8 = quantize_int8(fp32, tmp_path / "m.int8.onnx", calib, calib_size=256)
    proto = onnx.load(int8)
    assert {"QuantizeLinear", "DequantizeLinear"} <= {node.op_type for node in proto.graph.node}
    onnx.checker.check_model(proto)  # a valid ONNX file: each metadata key once (the quantizer copies some)
    props = {p.key: p.value for p in proto.metadata_props}
    assert props["arch"] == "linknet" and props["quantization"].startswith("int8 QDQ (cpu)")
    scenes = np.stack([render_scene(256, scene_rng(8, i))[0] for i in range(2)])
    case = ParityCase("scenes", torch.from_numpy(scenes).permute(0, 3, 1, 2).float())
    report = measure_parity(OnnxRuntimeBackend(fp32), OnnxRuntimeBackend(int8), str(int8), "int8", [case])
    assert report.min_mask_iou >= 0.9, report.to_dict()


def _export(*args: str) -> object:
    return runner.invoke(app, ["export", *args])


def test_int8_keep_float_option_errors(tmp_path: Path) -> None:
    ckpt = save_checkpoint(tmp_path / "m.pt", build_model("linknet"))
    base = ["--checkpoint", str(ckpt), "--out", str(tmp_path / "out")]
    result = _export(*base, "--int8-keep-float", "decoder")
    assert result.exit_code == 1 and "--int8-keep-float applies to INT8: add --int8 --calib DIR" in result.output
    result = _export(*base, "--int8", "--calib", str(tmp_path), "--int8-keep-float", "stem,head")
    assert result.exit_code == 1 and "unknown --int8-keep-float group(s) head; choose from stem, nonlocal, decoder" \
        in result.output
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_int8_without_calib_fails_at_once(tmp_path: Path) -> None:
    ckpt = save_checkpoint(tmp_path / "m.pt", build_model("linknet"))
    result = _export("--checkpoint", str(ckpt), "--out", str(tmp_path / "out"), "--int8")
    assert result.exit_code == 1 and "--int8 needs calibration images: pass --calib DIR" in result.output
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


def test_corrupt_checkpoint_leaves_no_artifacts(tmp_path: Path) -> None:
    (tmp_path / "bad.pt").write_bytes(b"\x00" * 64)
    result = _export("--checkpoint", str(tmp_path / "bad.pt"), "--out", str(tmp_path / "out"))
    assert result.exit_code == 1 and "cannot read checkpoint" in result.output
    assert list((tmp_path / "out").iterdir()) == []


def test_mismatched_checkpoint_names_the_keys(authors_th: Path, tmp_path: Path) -> None:
    result = _export("--checkpoint", str(authors_th), "--arch", "linknet", "--out", str(tmp_path / "out"))
    assert result.exit_code == 1 and "unexpected keys (26)" in result.output and "--arch nl34-linknet" in result.output
    assert list((tmp_path / "out").iterdir()) == []


def test_output_folder_that_is_a_file(tmp_path: Path) -> None:
    ckpt = save_checkpoint(tmp_path / "m.pt", build_model("linknet"))
    (tmp_path / "out").write_text("a file, not a folder")
    result = _export("--checkpoint", str(ckpt), "--out", str(tmp_path / "out"))
    assert result.exit_code == 1 and "cannot write to" in result.output


def test_existing_artifacts_need_force(tmp_path: Path) -> None:
    ckpt = save_checkpoint(tmp_path / "m.pt", build_model("linknet"))
    out = tmp_path / "out"
    out.mkdir()
    (out / "model.onnx").write_bytes(b"keep")
    result = _export("--checkpoint", str(ckpt), "--out", str(out))
    assert result.exit_code == 1 and "--force" in result.output and (out / "model.onnx").read_bytes() == b"keep"


def test_trt_without_gpu_fails_at_once_naming_what_is_missing(tmp_path: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is visible; this test covers machines without one")
    ckpt = save_checkpoint(tmp_path / "m.pt", build_model("linknet"))
    result = _export("--checkpoint", str(ckpt), "--out", str(tmp_path / "out"), "--trt")
    assert result.exit_code == 1 and "TensorRT needs a CUDA GPU and none is visible" in result.output
    result = _export("--checkpoint", str(ckpt), "--out", str(tmp_path / "out"), "--fp16")
    assert result.exit_code == 1 and "--fp16 applies to TensorRT engines" in result.output


def test_mask_iou_is_a_json_number_for_overlapping_masks() -> None:
    """parity.json must be writable when masks overlap (a trained model's), not only when both are empty."""
    a = np.zeros((8, 8), bool)
    b = np.zeros((8, 8), bool)
    a[:4], b[2:6] = True, True
    iou = road_iou(a, b)
    assert type(iou) is float and iou == pytest.approx(16 / 48)
    assert json.loads(json.dumps({"iou": iou}))["iou"] == pytest.approx(1 / 3)


@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_engine_parity_inputs_fit_the_optimization_profile(precision: str) -> None:
    """A TensorRT engine refuses shapes outside its profile; the parity inputs must all fit it."""
    from nltool.export.artifacts import engine_cases
    from nltool.export.tensorrt_build import EngineProfile

    for profile in (EngineProfile(), EngineProfile(min_side=256, opt_side=256, max_side=256, max_batch=1)):
        cases = engine_cases(profile, precision)
        assert cases and all(
            profile.min_batch <= c.batch.shape[0] <= profile.max_batch
            and profile.min_side <= min(c.batch.shape[2:]) and max(c.batch.shape[2:]) <= profile.max_side
            for c in cases)
        assert precision != "int8" or all(c.name.startswith("synthetic scenes") for c in cases)


def test_int8_keep_float_leaves_exactly_those_convs_unquantized(tmp_path: Path) -> None:
    from PIL import Image

    from nltool.export.quantize import float_conv_nodes, quantize_int8
    from nltool.synthetic import render_scene, scene_rng

    calib = tmp_path / "calib"
    calib.mkdir()
    Image.fromarray(render_scene(64, scene_rng(7, 0))[0]).save(calib / "c0_sat.jpg")
    torch.manual_seed(0)
    fp32 = export_onnx(build_model("nl34-linknet").eval(), tmp_path / "m.onnx")
    graph = onnx.load(fp32)
    groups = {g: float_conv_nodes(graph, [g]) for g in ("stem", "nonlocal", "decoder")}
    # stem: conv1 (fused with bn1); decoder: 4 blocks × two 1×1 convs + the head's two 3×3 convs;
    # non-local (embedded Gaussian): theta, phi, g and W in each of the two blocks.
    assert {g: len(n) for g, n in groups.items()} == {"stem": 1, "nonlocal": 8, "decoder": 10}
    int8 = onnx.load(quantize_int8(fp32, tmp_path / "m.int8.onnx", calib, calib_size=64,
                                   keep_float=["stem", "decoder"]))
    dequantized = {out for node in int8.graph.node if node.op_type == "DequantizeLinear" for out in node.output}
    convs = {node.name: node for node in int8.graph.node if node.op_type == "Conv"}
    kept = set(groups["stem"] + groups["decoder"])
    assert kept <= convs.keys()
    assert all(convs[name].input[1] not in dequantized for name in kept)  # float weights
    assert all(node.input[1] in dequantized for name, node in convs.items() if name not in kept)
    with pytest.raises(ExportError, match="unknown --int8-keep-float group"):
        float_conv_nodes(graph, ["head"])
