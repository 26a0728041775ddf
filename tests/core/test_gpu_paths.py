"""The GPU paths' decisions, on a machine without a GPU: device indices, onnxruntime providers and
options, the TensorRT INT8 graph, the parity reference, the gradient scaler on resume, TensorRT's
execution context and timing cache, and the CUDA major of the GPU extras.

Each decision is a pure function of what a GPU host would report (GPU count, current GPU,
onnxruntime's providers), so it runs here; nothing here claims a GPU result.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from conftest import REPO
from torch.cuda._utils import _get_device_index

from nltool.cache import cache_dir
from nltool.devices import CPU, TF32, TF32_OFF, Device, apply_tf32, choose_device, read_tf32, resolve_device, tf32_state
from nltool.errors import BackendError
from nltool.inference import PipelineConfig
from nltool.inference.backends.onnxruntime_backend import (
    TensorRTProviderSettings,
    execution_providers,
)
from nltool.inference.backends.tensorrt_backend import require_context
from nltool.models import build_model
from nltool.serving.settings import ServingSettings
from nltool.training.trainer import restore_scaler

GPU_ONNXRUNTIME = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
CPU_ONNXRUNTIME = ["CPUExecutionProvider"]


# -- devices ------------------------------------------------------------------------------------
def test_bare_cuda_becomes_the_current_gpu_with_its_index() -> None:
    """torch.cuda.set_device (TensorRT backend) needs an index: a bare "cuda" device raises there."""
    with pytest.raises(ValueError, match="Expected a torch.device with a specified index"):
        _get_device_index(torch.device("cuda"), optional=False)
    for option in ("cuda", "auto"):
        device = choose_device(option, cuda_count=2, current=1)
        assert device == Device("cuda", 1) and _get_device_index(device.to_torch(), optional=False) == 1
    assert choose_device("cuda:0", cuda_count=2, current=1) == Device("cuda", 0)
    assert choose_device("auto", cuda_count=0) == CPU
    assert choose_device("cpu", cuda_count=2, current=1) == CPU


def test_device_errors_say_what_to_do() -> None:
    with pytest.raises(BackendError, match=r"only 2 CUDA GPU\(s\) are visible \(cuda:0 to cuda:1\)"):
        choose_device("cuda:2", cuda_count=2, current=0)
    with pytest.raises(BackendError, match="no CUDA GPU is visible; use --device cpu"):
        choose_device("cuda", cuda_count=0)
    with pytest.raises(BackendError, match="not supported; use auto, cpu, cuda or cuda:N"):
        choose_device("meta", cuda_count=1)
    with pytest.raises(BackendError, match="device 'gpu' is not supported"):
        choose_device("gpu", cuda_count=1)
    if not torch.cuda.is_available():
        assert resolve_device("auto") == CPU


# -- the export's parity reference ----------------------------------------------------------------
def test_parity_reference_device_and_tf32() -> None:
    from nltool.export.reference import parity_setup

    on_gpu = parity_setup("cuda", trt=True, cuda_count=2, current=1)
    assert (on_gpu.reference, on_gpu.engine, on_gpu.tf32) == (Device("cuda", 1), Device("cuda", 1),
                                                              TF32(matmul=False, cudnn=False))
    on_cpu = parity_setup("cpu", trt=True, cuda_count=2, current=1)
    assert (on_cpu.reference, on_cpu.engine, on_cpu.tf32) == (CPU, Device("cuda", 1), TF32_OFF)
    assert parity_setup("cpu", trt=False, cuda_count=0, current=0).engine is None


def test_parity_reference_is_a_copy_and_leaves_the_exported_model_alone() -> None:
    from nltool.export.reference import parity_setup, reference_backend

    model = build_model("linknet").eval()
    reference = reference_backend(model, parity_setup("cpu", trt=False, cuda_count=0, current=0))
    assert reference.net.model is not model
    assert {p.data_ptr() for p in model.parameters()}.isdisjoint(p.data_ptr() for p in reference.net.parameters())
    batch = torch.rand(1, 3, 64, 64) * 255
    with torch.no_grad():
        expected = torch.sigmoid(model((batch / 255 - 0.5) / 0.3125))
    np.testing.assert_allclose(reference.run(batch.numpy()), expected.numpy(), atol=1e-5, rtol=0)


def test_tf32_state_switches_off_and_restores() -> None:
    original = read_tf32()
    try:
        apply_tf32(TF32(matmul=True, cudnn=True))
        with tf32_state(TF32_OFF) as previous:
            assert read_tf32() == TF32_OFF and previous == TF32(matmul=True, cudnn=True)
        assert read_tf32() == TF32(matmul=True, cudnn=True)
    finally:
        apply_tf32(original)


@pytest.mark.slow
def test_export_measures_parity_with_tf32_off(tmp_path: Path) -> None:
    """The whole build, parity included, runs with TF32 off; the user's switches come back afterwards."""
    pytest.importorskip("onnxruntime", reason="onnxruntime (the [cpu] extra) is not installed")
    from nltool.export.artifacts import ExportRequest, export_artifacts
    from nltool.models import save_checkpoint

    checkpoint = save_checkpoint(tmp_path / "m.pt", build_model("linknet"))
    seen: list[TF32] = []
    original = read_tf32()
    try:
        apply_tf32(TF32(matmul=True, cudnn=True))
        result = export_artifacts(ExportRequest(checkpoint=checkpoint, out=tmp_path / "out"),
                                  log=lambda message: seen.append(read_tf32()))
        assert read_tf32() == TF32(matmul=True, cudnn=True)
    finally:
        apply_tf32(original)
    assert result.passed and seen and all(state == TF32_OFF for state in seen)


# -- onnxruntime providers --------------------------------------------------------------------------
def test_onnxruntime_runs_on_the_gpu_it_is_given() -> None:
    """A TorchServe worker on gpu_id 1 must not run on GPU 0: the index reaches device_id."""
    assert execution_providers(Device("cuda", 1), GPU_ONNXRUNTIME) == [
        ("CUDAExecutionProvider", {"device_id": 1}), ("CPUExecutionProvider", {})]
    assert execution_providers(CPU, GPU_ONNXRUNTIME) == [("CPUExecutionProvider", {})]


def test_cuda_needs_onnxruntime_gpu_unless_auto() -> None:
    with pytest.raises(BackendError, match=r"install onnxruntime-gpu instead of onnxruntime \(pip install "
                                           r"'nltool\[gpu\]'\)"):
        execution_providers(Device("cuda", 0), CPU_ONNXRUNTIME)
    assert execution_providers(Device("cuda", 0), CPU_ONNXRUNTIME, explicit=False) == [
        ("CPUExecutionProvider", {})]


def test_onnxruntime_device_needs_torch_only_for_a_gpu() -> None:
    """``cpu``, and ``auto`` on a CPU-only onnxruntime, are decided without asking torch."""
    from nltool.inference.backends.onnxruntime_backend import onnxruntime_device

    assert onnxruntime_device("cpu", GPU_ONNXRUNTIME) == CPU
    assert onnxruntime_device("auto", CPU_ONNXRUNTIME) == CPU


def test_tensorrt_provider_is_opt_in_with_engine_cache_and_profile(tmp_path: Path) -> None:
    config = PipelineConfig(tile=512, overlap=64, batch_size=4, scales=(0.75, 1.0, 1.25))
    settings = TensorRTProviderSettings.for_pipeline(config, tmp_path)
    providers = execution_providers(Device("cuda", 1), GPU_ONNXRUNTIME, tensorrt=settings)
    assert [name for name, _ in providers] == GPU_ONNXRUNTIME
    assert providers[0][1] == {
        "device_id": 1,
        "trt_engine_cache_enable": True, "trt_engine_cache_path": str(tmp_path),
        "trt_timing_cache_enable": True, "trt_timing_cache_path": str(tmp_path),
        "trt_profile_min_shapes": "image:1x3x32x32",
        "trt_profile_opt_shapes": "image:4x3x512x512",
        "trt_profile_max_shapes": "image:4x3x640x640",  # the 512 tile at scale 1.25
    }
    shrinking = TensorRTProviderSettings.for_pipeline(PipelineConfig(tile=1024, overlap=128, scales=(0.5,)), tmp_path)
    assert (shrinking.opt_shape, shrinking.max_shape) == ((1, 3, 512, 512), (1, 3, 512, 512))
    with pytest.raises(BackendError, match="TensorRT provider is not in this onnxruntime"):
        execution_providers(Device("cuda", 0), GPU_ONNXRUNTIME[1:], tensorrt=settings)


def test_cpu_flavour_int8_is_refused_for_the_tensorrt_provider(tmp_path: Path) -> None:
    settings = TensorRTProviderSettings.for_pipeline(PipelineConfig(), tmp_path)
    with pytest.raises(BackendError, match="TensorRT does not accept it whole"):
        execution_providers(Device("cuda", 0), GPU_ONNXRUNTIME, tensorrt=settings,
                            quantization="int8 QDQ (cpu)")
    assert execution_providers(Device("cuda", 0), GPU_ONNXRUNTIME, tensorrt=settings,
                               quantization="int8 QDQ (tensorrt)")[0][0] == "TensorrtExecutionProvider"


def test_serving_settings_opt_into_the_tensorrt_provider(tmp_path: Path) -> None:
    assert ServingSettings().ort_tensorrt() is None
    settings = ServingSettings.from_dict({"tile": 256, "onnx_tensorrt": True, "tensorrt_cache": str(tmp_path)})
    assert ServingSettings.from_dict(settings.to_dict()) == settings
    assert settings.ort_tensorrt() == TensorRTProviderSettings(tmp_path, (1, 3, 32, 32), (1, 3, 256, 256),
                                                               (1, 3, 256, 256))


# -- INT8 for TensorRT ------------------------------------------------------------------------------
@pytest.mark.slow
def test_tensorrt_int8_leaves_conv_outputs_unquantized(tmp_path: Path) -> None:
    """TensorRT fuses Q/DQ into a Conv's inputs; a Q/DQ on its output (the logits too) only costs."""
    pytest.importorskip("onnxruntime", reason="onnxruntime (the [cpu] extra) is not installed")
    from PIL import Image

    from nltool.export.onnx_export import export_onnx
    from nltool.export.quantize import quantize_int8, quantizer_options
    from nltool.synthetic import render_scene, scene_rng

    assert quantizer_options("tensorrt").extra_options["OpTypesToExcludeOutputQuantization"] == ["Conv"]
    calib = tmp_path / "calib"
    calib.mkdir()
    Image.fromarray(render_scene(64, scene_rng(7, 0))[0]).save(calib / "c0_sat.jpg")
    torch.manual_seed(0)
    fp32 = export_onnx(build_model("linknet").eval(), tmp_path / "m.onnx")
    graph = onnx.load(quantize_int8(fp32, tmp_path / "m.trt.onnx", calib, calib_size=64, target="tensorrt")).graph
    producer = {out: node.op_type for node in graph.node for out in node.output}
    convs = [node for node in graph.node if node.op_type == "Conv"]
    quantized_outputs = [node.name for node in graph.node
                         if node.op_type == "QuantizeLinear" and producer.get(node.input[0]) == "Conv"]
    assert convs and not quantized_outputs
    assert all(producer.get(conv.input[0]) == producer.get(conv.input[1]) == "DequantizeLinear" for conv in convs)
    zero_points = {init.name: init for init in graph.initializer}
    for node in graph.node:
        if node.op_type == "QuantizeLinear":  # TensorRT takes symmetric int8 only
            zero_point = onnx.numpy_helper.to_array(zero_points[node.input[2]])
            assert zero_point.dtype.name == "int8" and not zero_point.any()


@pytest.mark.slow
def test_fp16_onnx_of_the_dynamo_graph_keeps_float32_io_and_checks(tmp_path: Path) -> None:
    """TensorRT 11 builds FP16 from an FP16 ONNX (onnxconverter-common); the graph must stay valid with
    float32 ``image``/``prob``. Whether TensorRT parses it is for a GPU host (benchmarks/gpu_check.py)."""
    pytest.importorskip("onnxconverter_common", reason="onnxconverter-common (the [trt] extra) is not installed")
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime (the [cpu] extra) is not installed")
    from nltool.export.onnx_export import export_onnx
    from nltool.export.tensorrt_build import fp16_onnx

    torch.manual_seed(0)
    fp32 = export_onnx(build_model("nl34-linknet", pairwise="gaussian").eval(), tmp_path / "m.onnx")
    half = onnx.load(fp16_onnx(fp32, tmp_path / "m.fp16.onnx"))
    onnx.checker.check_model(half)
    onnx.shape_inference.infer_shapes(half, strict_mode=True)
    float32 = onnx.TensorProto.FLOAT
    assert [(v.name, v.type.tensor_type.elem_type) for v in (*half.graph.input, *half.graph.output)] == [
        ("image", float32), ("prob", float32)]
    assert any(init.data_type == onnx.TensorProto.FLOAT16 for init in half.graph.initializer)
    batch = (torch.rand(1, 3, 128, 128, generator=torch.Generator().manual_seed(1)) * 255).numpy()
    expected, got = (ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"image": batch})[0]
                     for path in (fp32, tmp_path / "m.fp16.onnx"))
    assert abs(got - expected).max() < 2e-2


# -- training ---------------------------------------------------------------------------------------
def test_resuming_with_amp_a_run_without_amp_starts_a_fresh_scaler() -> None:
    saved_without_amp = torch.amp.GradScaler("cpu", enabled=False).state_dict()
    assert saved_without_amp == {}
    scaler = torch.amp.GradScaler("cpu", enabled=True, init_scale=2.0**16)
    assert restore_scaler(scaler, saved_without_amp) is False and scaler.get_scale() == 2.0**16
    saved_with_amp = torch.amp.GradScaler("cpu", enabled=True, init_scale=8.0).state_dict()
    assert restore_scaler(scaler, saved_with_amp) is True and scaler.get_scale() == 8.0
    assert restore_scaler(torch.amp.GradScaler("cpu", enabled=False), saved_with_amp) is False


# -- TensorRT: execution context and timing cache --------------------------------------------------
def test_missing_execution_context_is_a_clear_error() -> None:
    profile = [(1, 3, 256, 256), (1, 3, 1024, 1024), (4, 3, 1024, 1024)]
    with pytest.raises(BackendError, match=r"not enough free GPU memory for the engine's largest input \(4, 3, 1024, "
                                           r"1024\).*fewer workers per GPU"):
        require_context(None, Path("model.fp32.plan"), Device("cuda", 0), profile)
    context = object()
    assert require_context(context, Path("model.fp32.plan"), Device("cuda", 0), profile) is context


def test_every_execution_context_is_checked() -> None:
    source = (REPO / "nltool" / "inference" / "backends" / "tensorrt_backend.py").read_text()
    calls = [node for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Call)]
    created = [call for call in calls if isinstance(call.func, ast.Attribute)
               and call.func.attr == "create_execution_context"]
    checked = [arg for call in calls if isinstance(call.func, ast.Name) and call.func.id == "require_context"
               for arg in call.args[:1]]
    assert created and all(call in checked for call in created)


def test_timing_cache_outlives_the_export(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from nltool.export.artifacts import ExportRequest
    from nltool.export.tensorrt_build import timing_cache_path

    monkeypatch.setenv("NLTOOL_CACHE_DIR", str(tmp_path / "cache"))
    request = ExportRequest(checkpoint=tmp_path / "m.pt", out=tmp_path / "out")
    first = timing_cache_path(request.cache, "10.13.3.9", (9, 0))
    assert first == tmp_path / "cache" / "tensorrt" / "timing-trt10.13.3.9-sm90.cache"
    assert not first.is_relative_to(request.out)
    later = ExportRequest(checkpoint=tmp_path / "m.pt", out=tmp_path / "elsewhere")
    assert timing_cache_path(later.cache, "10.13.3.9", (9, 0)) == first
    assert timing_cache_path(later.cache, "10.13.3.9", (8, 9)) != first


def test_cache_folder_follows_the_environment(tmp_path: Path) -> None:
    assert cache_dir({"NLTOOL_CACHE_DIR": "/srv/cache", "XDG_CACHE_HOME": "/x"}) == Path("/srv/cache")
    assert cache_dir({"XDG_CACHE_HOME": "/x"}) == Path("/x/nltool")
    assert cache_dir({}, home=tmp_path) == tmp_path / ".cache" / "nltool"


# -- the supported CUDA combination ----------------------------------------------------------------
def _requirements(extra: str) -> dict[str, str]:
    tomllib = pytest.importorskip("tomllib", reason="tomllib needs Python 3.11")
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    return {re.match(r"[A-Za-z0-9_.-]+", spec)[0]: spec for spec in extras[extra]}  # type: ignore[index]


def test_gpu_extras_share_one_cuda_major() -> None:
    """onnxruntime-gpu <= 1.26 (CUDA 12) and a TensorRT of any CUDA major cannot share torch's CUDA 13."""
    gpu, trt = _requirements("gpu"), _requirements("trt")
    assert gpu["onnxruntime-gpu"] == "onnxruntime-gpu>=1.27"
    assert trt["tensorrt-cu13"] == "tensorrt-cu13>=10.13,<11" and "tensorrt" not in trt
    assert gpu["torch"] == trt["torch"] == "torch>=2.14"
    if torch.version.cuda is not None:  # a CUDA build of torch: the extras' CUDA major is its own
        assert torch.version.cuda.split(".")[0] == "13"


# -- the GPU check script ----------------------------------------------------------------------------
@pytest.mark.slow
def test_gpu_check_says_there_is_no_gpu_and_exits_0() -> None:
    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is visible; this test covers machines without one")
    done = subprocess.run([sys.executable, "-m", "benchmarks.gpu_check"], cwd=REPO, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert "no CUDA GPU is visible" in done.stdout and "nothing to check" in done.stdout


def test_cpu_int8_weights_use_all_8_bits(tmp_path: Path) -> None:
    """The CPU QDQ file has full-range 8-bit weights: 7-bit ones (onnxruntime's reduce_range) lost the
    INT8 gate on trained checkpoints on an AVX2-only CPU (docs/artifacts.md)."""
    pytest.importorskip("onnxruntime", reason="onnxruntime (the [cpu] extra) is not installed")
    from onnx import numpy_helper
    from PIL import Image

    from nltool.export.onnx_export import export_onnx
    from nltool.export.quantize import quantize_int8, quantizer_options
    from nltool.synthetic import render_scene, scene_rng

    assert not quantizer_options("cpu").reduce_range and not quantizer_options("tensorrt").reduce_range
    calib = tmp_path / "calib"
    calib.mkdir()
    Image.fromarray(render_scene(64, scene_rng(7, 0))[0]).save(calib / "c0_sat.jpg")
    torch.manual_seed(0)
    fp32 = export_onnx(build_model("linknet").eval(), tmp_path / "m.onnx")
    graph = onnx.load(quantize_int8(fp32, tmp_path / "m.int8.onnx", calib, calib_size=64)).graph
    weights = [numpy_helper.to_array(t).astype(np.int32) for t in graph.initializer
               if t.data_type == onnx.TensorProto.INT8 and len(t.dims) == 4]
    assert len(weights) > 20, "the Conv weights are stored as int8"
    assert max(int(np.abs(w).max()) for w in weights) == 127  # symmetric 8-bit; 7-bit stops at 64
