"""``--int8-keep-float auto``: the decision over measured IoUs, the search, and real quantized models
that need no group float, need the decoder float, or cannot be kept within tolerance at all."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest
from conftest import unsure_linknet
from PIL import Image

from nltool.models import save_checkpoint

pytest.importorskip("onnxruntime", reason="onnxruntime (the [cpu] extra) is not installed")
from nltool.export.int8_auto import (
    build_int8,
    candidate_levels,
    choose_keep_float,
    parse_keep_float,
    search_keep_float,
    split_calibration,
)
from nltool.export.onnx_export import ExportError, export_onnx
from nltool.export.quantize import float_conv_nodes, write_int8
from nltool.synthetic import render_scene, scene_rng


def test_choose_keeps_no_group_when_all_conv_int8_holds() -> None:
    assert choose_keep_float({(): 0.985, ("stem",): 0.99}, 0.98) == ()


def test_choose_keeps_the_fewest_groups_then_the_higher_iou() -> None:
    measured = {(): 0.95, ("stem",): 0.97, ("nonlocal",): 0.982, ("decoder",): 0.986,
                ("stem", "decoder"): 0.995, ("stem", "nonlocal", "decoder"): 0.999}
    assert choose_keep_float(measured, 0.98) == ("decoder",)
    assert choose_keep_float(measured, 0.99) == ("stem", "decoder")


def test_choose_returns_none_when_nothing_meets_the_tolerance() -> None:
    assert choose_keep_float({(): 0.9, ("stem", "nonlocal", "decoder"): 0.97}, 0.98) is None


def test_search_measures_by_size_and_stops_at_the_first_size_that_holds() -> None:
    ious = {(): 0.95, ("stem",): 0.96, ("nonlocal",): 0.97, ("decoder",): 0.975,
            ("stem", "nonlocal"): 0.97, ("stem", "decoder"): 0.985, ("nonlocal", "decoder"): 0.99,
            ("stem", "nonlocal", "decoder"): 0.995}
    chosen, measured = search_keep_float(ious.__getitem__, ["stem", "nonlocal", "decoder"], 0.98)
    assert chosen == ("nonlocal", "decoder")
    assert set(measured) == {k for k in ious if len(k) <= 2}  # the three-group candidate was never built
    chosen, measured = search_keep_float(ious.__getitem__, ["stem", "nonlocal", "decoder"], 0.999)
    assert chosen is None and measured == ious


def test_candidate_levels_and_calibration_split() -> None:
    assert [len(level) for level in candidate_levels(["stem", "nonlocal", "decoder"])] == [1, 3, 3, 1]
    assert split_calibration(8) == ([0, 1, 2, 4, 5, 6], [3, 7])
    assert split_calibration(3) == ([0, 1, 2], [0, 1, 2])  # too few to hold any out: the same images


def test_parse_keep_float() -> None:
    assert parse_keep_float("auto") == "auto"
    assert parse_keep_float("none") == ()
    assert parse_keep_float("stem, decoder") == ("stem", "decoder")
    with pytest.raises(ExportError, match="unknown --int8-keep-float group"):
        parse_keep_float("stem,head")


@pytest.fixture(scope="module")
def calib(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("calib")
    for i in range(8):
        Image.fromarray(render_scene(128, scene_rng(7, i))[0]).save(folder / f"c{i}_sat.png")
    return folder


@pytest.mark.slow
def test_auto_keeps_the_decoder_float_when_its_input_cannot_be_quantized(calib: Path, tmp_path: Path) -> None:
    fp32 = export_onnx(unsure_linknet("decoder"), tmp_path / "m.onnx")
    choice, calibration = build_int8(fp32, tmp_path / "m.int8.onnx", calib, tmp_path / "work", calib_size=128)
    ious = {c.keep_float: c.iou for c in choice.candidates}
    assert choice.keep_float == ("decoder",), ious
    assert ious[()] < 0.98 and ious[("stem",)] < 0.98 and ious[("decoder",)] >= 0.98
    assert set(ious) == {(), ("stem",), ("decoder",)}  # a LinkNet has no non-local group; no pair was needed
    props = {p.key: p.value for p in onnx.load(tmp_path / "m.int8.onnx").metadata_props}
    assert "kept float: decoder; chosen by --int8-keep-float auto" in props["quantization"]
    # The TensorRT flavour (--trt --int8) reuses the choice and the calibration.
    trt = onnx.load(write_int8(calibration, tmp_path / "m.trt.onnx", target="tensorrt",
                               keep_float=choice.keep_float, note=choice.note()))
    dequantized = {out for node in trt.graph.node if node.op_type == "DequantizeLinear" for out in node.output}
    convs = {node.name: node for node in trt.graph.node if node.op_type == "Conv"}
    decoder = set(float_conv_nodes(onnx.load(fp32), ["decoder"]))
    assert decoder and all(convs[name].input[1] not in dequantized for name in decoder)
    assert all(node.input[1] in dequantized for name, node in convs.items() if name not in decoder)


@pytest.mark.slow
def test_export_fails_and_writes_nothing_when_no_choice_holds(calib: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from nltool.app.cli import app

    ckpt = save_checkpoint(tmp_path / "m.pt", unsure_linknet("encoder"))
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["export", "--checkpoint", str(ckpt), "--out", str(out), "--int8",
                                      "--calib", str(calib)])
    assert result.exit_code == 1
    assert "INT8 cannot keep masks within mask IoU 0.98 of FP32" in result.output
    assert "stem+decoder float" in result.output and "train it longer" in result.output
    assert list(out.iterdir()) == []  # no model.int8.onnx, no half-written staging folder


@pytest.mark.slow
def test_the_demo_goes_on_in_fp32_when_int8_misses_its_gate(calib: Path, tmp_path: Path) -> None:
    """A briefly trained model on a CPU without VNNI can miss the INT8 gate: the demo still serves FP32."""
    from nltool.app.demo import DemoConfig, DemoReport, _export, _markdown, _Stages

    ckpt = save_checkpoint(tmp_path / "m.pt", unsure_linknet("encoder"))
    report = DemoReport(out=tmp_path, config=DemoConfig())
    said: list[str] = []
    onnx_path = _export(_Stages(report, said.append, 7), report, tmp_path, ckpt, calib, said.append)
    assert onnx_path == tmp_path / "artifacts" / "model.onnx" and onnx_path.is_file()
    assert not (tmp_path / "artifacts" / "model.int8.onnx").exists()
    int8 = report.numbers["export"]["int8"]
    assert int8["written"] is False and "INT8 cannot keep masks within mask IoU 0.98" in int8["gate"]
    assert report.numbers["export"]["fp32"]["passed"] is True
    assert "INT8 not written" in report.stages[0].result
    report.numbers |= {"train": {"steps": 1}, "evaluate": {"tta": "d4", "per_image": {}}}
    assert "found no choice that holds it, so no INT8 model was written" in _markdown(report)


@pytest.mark.slow
def test_auto_keeps_no_group_when_every_conv_int8_holds_and_records_it(calib: Path, tmp_path: Path) -> None:
    from nltool.export.artifacts import ExportRequest, export_artifacts

    ckpt = save_checkpoint(tmp_path / "m.pt", unsure_linknet(road_fraction=0.9))
    result = export_artifacts(ExportRequest(checkpoint=ckpt, out=tmp_path / "out", int8=True, calib=calib),
                              log=lambda _: None)
    assert result.passed
    entry = json.loads(result.parity.read_text())["artifacts"]["model.int8.onnx"]
    q = entry["quantization"]
    assert q["mode"] == "auto" and q["keep_float"] == [] and q["tolerance_min_mask_iou"] == 0.98
    assert [c["keep_float"] for c in q["candidates"]] == [[]] and q["candidates"][0]["iou"] >= 0.98
    assert q["held_out_images"] == 2 and q["calibration_images"] == 6 and q["held_out_separate_from_calibration"]
    props = {p.key: p.value for p in onnx.load(tmp_path / "out" / "model.int8.onnx").metadata_props}
    assert "every Conv quantized; chosen by --int8-keep-float auto" in props["quantization"]
