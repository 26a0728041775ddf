"""``nltool export --int8 --int8-engine openvino``: NNCF INT8 with accuracy control, its gate, and
``--backend auto`` running the IR it writes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("openvino", reason="openvino (the [openvino] extra) is not installed")
pytest.importorskip("nncf", reason="nncf (the [openvino-int8] extra) is not installed")
pytest.importorskip("onnxruntime", reason="onnxruntime (the [cpu] extra) is not installed: FP32 parity runs on it")
from conftest import sharp_linknet

from nltool.export.artifacts import ExportRequest, check_request, export_artifacts
from nltool.export.onnx_export import ExportError
from nltool.inference import load_backend
from nltool.models import save_checkpoint
from nltool.synthetic import render_scene, scene_rng


@pytest.fixture(scope="module")
def calib(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("calib")
    for i in range(8):
        Image.fromarray(render_scene(128, scene_rng(7, i))[0]).save(folder / f"c{i}_sat.png")
    return folder


def test_openvino_engine_writes_an_ir_and_refuses_what_it_cannot_do(tmp_path: Path) -> None:
    request = ExportRequest(checkpoint=tmp_path / "m.pt", out=tmp_path / "out", int8=True, calib=tmp_path,
                            int8_engine="openvino")
    assert request.planned_files() == ["parity.json", "model.onnx", "model.int8.xml", "model.int8.bin"]
    with pytest.raises(ExportError, match="--int8-keep-float applies to --int8-engine onnxruntime"):
        check_request(ExportRequest(checkpoint=tmp_path / "m.pt", out=tmp_path / "out", int8=True, calib=tmp_path,
                                    int8_engine="openvino", int8_keep_float=("stem",)))
    with pytest.raises(ExportError, match="--int8-engine must be one of onnxruntime, openvino"):
        check_request(ExportRequest(checkpoint=tmp_path / "m.pt", out=tmp_path / "out", int8=True, calib=tmp_path,
                                    int8_engine="tflite"))  # type: ignore[arg-type]


@pytest.mark.slow
def test_openvino_int8_passes_its_gate_records_it_and_auto_runs_it(calib: Path, tmp_path: Path) -> None:
    ckpt = save_checkpoint(tmp_path / "m.pt", sharp_linknet())
    out = tmp_path / "out"
    result = export_artifacts(ExportRequest(checkpoint=ckpt, out=out, int8=True, calib=calib, int8_engine="openvino"),
                              log=lambda _: None)
    assert result.passed
    assert sorted(p.name for p in out.iterdir()) == ["model.int8.bin", "model.int8.xml", "model.onnx", "parity.json"]
    entry = json.loads(result.parity.read_text())["artifacts"]["model.int8.xml"]
    q = entry["quantization"]
    assert entry["min_mask_iou"] >= 0.98 and q["iou"] >= 0.98 and q["tolerance_min_mask_iou"] == 0.98
    assert q["held_out_images"] == 2 and q["calibration_images"] == 6 and q["quantized_ops"] > 0

    import openvino as ov

    info = ov.Core().read_model(str(out / "model.int8.xml")).get_rt_info()
    assert info["nltool"]["arch"].astype(str) == "linknet"
    assert "NNCF accuracy control" in info["nltool"]["quantization"].astype(str)

    loaded = load_backend(out / "model.int8.xml", device="cpu")
    assert (loaded.choice.backend, loaded.choice.precision) == ("openvino", "int8")
    fp32 = load_backend(out / "model.onnx", device="cpu", backend="onnxruntime")
    scene = np.ascontiguousarray(render_scene(128, scene_rng(9, 0))[0].transpose(2, 0, 1)[None], dtype=np.float32)
    agree = np.mean((loaded.run(scene) > 0.5) == (fp32.run(scene) > 0.5))
    assert agree > 0.95


@pytest.mark.slow
def test_a_gate_accuracy_control_cannot_reach_fails_says_what_it_measured_and_writes_nothing(tmp_path: Path) -> None:
    """Activation outliers at the input of an encoder and a decoder Conv on a model whose every pixel is
    near the threshold: NNCF returns its most harmful operations to float, cannot reach IoU 0.999, and
    the export stops with the numbers instead of writing an IR."""
    from conftest import unsure_linknet

    from nltool.export.onnx_export import export_onnx
    from nltool.export.openvino_int8 import build_openvino_int8

    calib = tmp_path / "calib"
    calib.mkdir()
    for i in range(8):
        Image.fromarray(render_scene(64, scene_rng(7, i))[0]).save(calib / f"c{i}_sat.png")
    fp32 = export_onnx(unsure_linknet("encoder", "decoder"), tmp_path / "m.onnx")
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(ExportError, match=r"cannot keep masks within mask IoU 0.999 of FP32.*reached 0\.\d+ on 2 "
                                          r"held-out calibration image\(s\).*No INT8 model was written"):
        build_openvino_int8(fp32, out / "model.int8.xml", calib, tmp_path / "work", tolerance=0.999, calib_size=64,
                            log=lambda _: None)
    assert list(out.iterdir()) == []
