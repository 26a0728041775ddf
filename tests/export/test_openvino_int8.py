"""OpenVINO INT8 from NNCF: the IR pair is written, carries nltool's metadata and keeps the masks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import sharp_linknet

from nltool.data.synth import SynthConfig, write_synthetic_dataset
from nltool.errors import BackendError
from nltool.export.onnx_export import ExportError, export_onnx
from nltool.export.parity import scene_case, stacked_mask
from nltool.metrics import road_iou
from nltool.optional import available

pytestmark = pytest.mark.skipif(not (available("openvino") and available("nncf") and available("onnxruntime")),
                                reason="openvino and nncf (the [openvino] extra) or onnxruntime ([cpu]) not installed")


@pytest.mark.slow
def test_nncf_int8_ir_keeps_the_masks(tmp_path: Path) -> None:
    from nltool.export.openvino_int8 import OPENVINO_INT8_NAME, quantize_openvino_int8
    from nltool.inference.backends.onnxruntime_backend import OnnxRuntimeBackend
    from nltool.inference.backends.openvino_backend import OpenVinoBackend

    scenes = scene_case(2, 128, seed=1).batch.numpy()
    model = sharp_linknet()
    with torch.no_grad():  # half the pixels road, as in tests/core/test_openvino_backend.py
        model.decoder.head.conv3.bias.sub_(model(torch.from_numpy(scenes) / 255).median())
    fp32 = export_onnx(model, tmp_path / "model.onnx")
    write_synthetic_dataset(tmp_path / "calib", SynthConfig(n=4, size=128, seed=0))
    out = quantize_openvino_int8(fp32, tmp_path / "export" / OPENVINO_INT8_NAME, tmp_path / "calib", calib_size=128)
    assert sorted(p.name for p in out.parent.iterdir()) == ["model.openvino-int8.bin", "model.openvino-int8.xml"]

    backend = OpenVinoBackend(out, precision="int8", threads=1)
    assert backend.quantized and backend.metadata["arch"] == "linknet"
    assert backend.metadata["quantization"].startswith("int8 NNCF")
    expected = OnnxRuntimeBackend(fp32, device="cpu").run(scenes)
    got = backend.run(scenes)
    assert got.shape == expected.shape and np.isfinite(got).all()
    assert road_iou(stacked_mask(got), stacked_mask(expected)) >= 0.98
    with pytest.raises(BackendError, match="is an INT8 model: run it with --precision int8"):
        OpenVinoBackend(out, precision="fp32")
    with pytest.raises(BackendError, match="model.onnx is not quantized"):
        OpenVinoBackend(fp32, precision="int8")


def test_ir_must_be_named_xml(tmp_path: Path) -> None:
    from nltool.export.openvino_int8 import quantize_openvino_int8

    with pytest.raises(ExportError, match=r"written as .xml \+ .bin; model.int8 does not end in .xml"):
        quantize_openvino_int8(tmp_path / "model.onnx", tmp_path / "model.int8", tmp_path)
