"""The OpenVINO backend: parity with onnxruntime (fp32, bf16), IR artifacts, and clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import sharp_linknet

from nltool.errors import BackendError
from nltool.export.onnx_export import export_onnx
from nltool.export.parity import scene_case, stacked_mask
from nltool.inference import InferencePipeline, PipelineConfig
from nltool.inference.backends.onnxruntime_backend import OnnxRuntimeBackend
from nltool.inference.backends.openvino_backend import (
    OpenVinoBackend,
    bf16_supported,
    check_precision,
    compile_config,
    cpu_capabilities,
    import_openvino,
)
from nltool.metrics import road_iou
from nltool.optional import available

needs_openvino = pytest.mark.skipif(not (available("openvino") and available("onnxruntime")),
                                    reason="openvino (the [openvino] extra) or onnxruntime ([cpu]) is not installed")


@pytest.fixture(scope="module")
def scenes() -> np.ndarray:
    """Two synthetic road scenes of 128², N×3×H×W RGB 0-255."""
    return scene_case(2, 128).batch.numpy()


@pytest.fixture(scope="module")
def onnx_path(tmp_path_factory: pytest.TempPathFactory, scenes: np.ndarray) -> Path:
    """The sharp LinkNet with its head's bias set so that half the scene pixels are road: masks with
    both classes and confident logits, as a trained model gives."""
    model = sharp_linknet()
    with torch.no_grad():
        logits = model(torch.from_numpy(scenes) / 255)
        model.decoder.head.conv3.bias.sub_(logits.median())
    return export_onnx(model, tmp_path_factory.mktemp("openvino") / "sharp.onnx")


@needs_openvino
def test_fp32_matches_onnxruntime_across_shapes(onnx_path: Path) -> None:
    backend, reference = OpenVinoBackend(onnx_path, threads=1), OnnxRuntimeBackend(onnx_path, device="cpu")
    rng = np.random.default_rng(0)
    for shape in [(1, 3, 64, 96), (3, 3, 128, 64), (1, 3, 64, 96)]:  # a shape, another, and back
        batch = rng.random(shape, dtype=np.float32) * 255
        got = backend.run(batch)
        assert got.shape == (shape[0], 1, *shape[2:]) and got.dtype == np.float32
        assert np.abs(got - reference.run(batch)).max() < 1e-4
    described = backend.describe()
    assert described["inference_precision"] == "f32" and described["threads"] == 1


@needs_openvino
def test_pipeline_with_d4_tta_matches_onnxruntime(onnx_path: Path) -> None:
    rgb = (np.random.default_rng(2).random((150, 230, 3)) * 255).astype(np.uint8)
    config = PipelineConfig(tile=128, overlap=32, tta="d4")  # full and edge tiles, 8 transforms a batch
    from_openvino = InferencePipeline(OpenVinoBackend(onnx_path, threads=1), config).predict_proba(rgb)
    from_ort = InferencePipeline(OnnxRuntimeBackend(onnx_path, device="cpu"), config).predict_proba(rgb)
    assert np.abs(from_openvino - from_ort).max() < 1e-4


@needs_openvino
def test_ir_artifact_runs_like_its_onnx(onnx_path: Path, tmp_path: Path, scenes: np.ndarray) -> None:
    xml = tmp_path / "model.xml"
    ov = import_openvino()
    ov.save_model(ov.Core().read_model(onnx_path), xml, compress_to_fp16=False)  # keep f32 weights
    got = OpenVinoBackend(xml, threads=1).run(scenes)
    assert np.abs(got - OpenVinoBackend(onnx_path, threads=1).run(scenes)).max() < 1e-5


@needs_openvino
def test_bf16_masks_match_fp32(onnx_path: Path, scenes: np.ndarray) -> None:
    if not bf16_supported(cpu_capabilities(import_openvino().Core())):
        pytest.skip("this CPU has no native bf16 (OpenVINO's CPU OPTIMIZATION_CAPABILITIES lack BF16)")
    backend = OpenVinoBackend(onnx_path, precision="bf16", threads=1)
    assert backend.describe()["inference_precision"] == "bf16"
    expected = OnnxRuntimeBackend(onnx_path, device="cpu").run(scenes)
    assert 0.2 < (expected > 0.5).mean() < 0.8  # the comparison is not trivial
    assert road_iou(stacked_mask(backend.run(scenes)), stacked_mask(expected)) >= 0.99


def test_bf16_capability_from_openvino_or_cpu_flags() -> None:
    assert bf16_supported(["BF16", "FP32", "INT8"])
    assert bf16_supported(["fpu", "avx512f", "avx512_bf16"])
    assert bf16_supported(["amx_bf16"])
    assert not bf16_supported(["FP32", "FP16", "INT8", "BIN", "EXPORT_IMPORT"])
    assert not bf16_supported(["fpu", "avx2", "avx512f"])


def test_precisions_are_pinned() -> None:
    assert compile_config("fp32", None)["INFERENCE_PRECISION_HINT"] == "f32"
    assert compile_config("bf16", 2) == {"INFERENCE_PRECISION_HINT": "bf16", "PERFORMANCE_HINT": "LATENCY",
                                         "INFERENCE_NUM_THREADS": 2}
    with pytest.raises(BackendError, match="precision 'fp16' is not one of fp32, bf16, int8"):
        compile_config("fp16", None)
    # An INT8 IR's float operations: bf16 where the CPU has it natively, else f32; fp32 stays f32.
    assert compile_config("int8", None, native_bf16=True)["INFERENCE_PRECISION_HINT"] == "bf16"
    assert compile_config("int8", None, native_bf16=False)["INFERENCE_PRECISION_HINT"] == "f32"
    assert compile_config("fp32", None, native_bf16=True)["INFERENCE_PRECISION_HINT"] == "f32"


def test_precision_the_cpu_or_artifact_cannot_give_is_refused() -> None:
    with pytest.raises(BackendError, match="bf16 needs a CPU with native bf16.*this CPU has FP32, INT8"):
        check_precision("bf16", ["FP32", "INT8"], quantized=False, path=Path("m.onnx"))
    with pytest.raises(BackendError, match="m.onnx is not quantized"):
        check_precision("int8", ["FP32", "INT8"], quantized=False, path=Path("m.onnx"))
    with pytest.raises(BackendError, match="is an INT8 model: run it with --precision int8"):
        check_precision("fp32", ["FP32", "INT8"], quantized=True, path=Path("m.xml"))


@needs_openvino
def test_missing_and_unreadable_files_are_backend_errors(tmp_path: Path) -> None:
    with pytest.raises(BackendError, match="model file not found: .*absent.onnx"):
        OpenVinoBackend(tmp_path / "absent.onnx")
    (tmp_path / "bad.onnx").write_bytes(b"not a protobuf")
    with pytest.raises(BackendError, match=r"OpenVINO .* cannot read .*bad.onnx"):
        OpenVinoBackend(tmp_path / "bad.onnx")
    (tmp_path / "lonely.xml").write_text("<net/>")
    with pytest.raises(BackendError, match="has no weights file lonely.bin beside it"):
        OpenVinoBackend(tmp_path / "lonely.xml")
    (tmp_path / "model.plan").write_bytes(b"x")
    with pytest.raises(BackendError, match=r"reads .onnx or OpenVINO IR .*not model.plan"):
        OpenVinoBackend(tmp_path / "model.plan")


@needs_openvino
def test_a_batch_openvino_cannot_run_is_a_clear_server_error(onnx_path: Path) -> None:
    """Not an NltoolError: a model that fails to run is the server's fault (TorchServe answers 500)."""
    for threads in (1, 2):  # OpenVINO itself raises with 2 threads, returns an empty array with 1
        with pytest.raises((RuntimeError, ValueError), match=r"OpenVINO .* a batch of shape \(1, 4, 64, 64\)"):
            OpenVinoBackend(onnx_path, threads=threads).run(np.zeros((1, 4, 64, 64), np.float32))


@needs_openvino
def test_foreign_onnx_is_refused(tmp_path: Path) -> None:
    torch.onnx.export(torch.nn.Conv2d(3, 1, 1).eval(), (torch.zeros(1, 3, 8, 8),), str(tmp_path / "other.onnx"),
                      dynamo=True, input_names=["x"], output_names=["y"], verbose=False)
    with pytest.raises(BackendError, match="not an nltool artifact: expected input 'image'"):
        OpenVinoBackend(tmp_path / "other.onnx")


@needs_openvino
@pytest.mark.parametrize("device", ["cuda", "cuda:0", "gpu"])
def test_devices_other_than_the_cpu_are_refused(onnx_path: Path, device: str) -> None:
    with pytest.raises(BackendError, match=f"runs on the CPU only, not '{device}'"):
        OpenVinoBackend(onnx_path, device=device)
