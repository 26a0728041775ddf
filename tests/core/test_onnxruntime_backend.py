"""The onnxruntime backend on an exported artifact: parity with PyTorch and clear load errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from nltool.errors import BackendError
from nltool.inference import InferencePipeline, PipelineConfig, load_backend
from nltool.inference.backends.torch_backend import TorchBackend
from nltool.models import build_model, save_checkpoint

pytest.importorskip("onnxruntime", reason="onnxruntime (the [cpu] extra) is not installed")
from nltool.export.onnx_export import export_onnx


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A random NL34 model as checkpoint and as ONNX."""
    torch.manual_seed(0)
    model = build_model("nl34-linknet").eval()
    with torch.no_grad():
        model.decoder.head.conv3.weight.mul_(50)
        for block in (model.encoder.nonlocal3, model.encoder.nonlocal4):  # make the blocks do something
            block.W[1].weight.fill_(0.5)
    folder = tmp_path_factory.mktemp("onnx")
    return save_checkpoint(folder / "m.pt", model), export_onnx(model, folder / "m.onnx")


@pytest.mark.parametrize("shape", [(1, 3, 256, 256), (1, 3, 320, 512), (2, 3, 64, 96)])
def test_onnxruntime_matches_pytorch(artifacts: tuple[Path, Path], shape: tuple[int, ...]) -> None:
    checkpoint, onnx_path = artifacts
    ort_backend, torch_backend = load_backend(onnx_path, backend="onnxruntime"), load_backend(checkpoint, device="cpu")
    assert ort_backend.name == "onnxruntime" and isinstance(torch_backend, TorchBackend)
    batch = np.random.default_rng(1).random(shape, dtype=np.float32) * 255
    got, expected = ort_backend.run(batch), torch_backend.run(batch)
    assert got.shape == (shape[0], 1, *shape[2:]) and got.dtype == np.float32
    assert np.abs(got - expected).max() < 1e-4


def test_pipeline_masks_agree_across_backends(artifacts: tuple[Path, Path]) -> None:
    checkpoint, onnx_path = artifacts
    rgb = (np.random.default_rng(2).random((150, 230, 3)) * 255).astype(np.uint8)
    config = PipelineConfig(tile=128, overlap=32, tta="flip")
    from_torch = InferencePipeline(load_backend(checkpoint, device="cpu"), config).predict_proba(rgb)
    from_ort = InferencePipeline(load_backend(onnx_path, backend="onnxruntime"), config).predict_proba(rgb)
    assert np.abs(from_torch - from_ort).max() < 1e-4


def test_artifact_carries_metadata(artifacts: tuple[Path, Path]) -> None:
    props = {p.key: p.value for p in onnx.load(artifacts[1]).metadata_props}
    assert props["arch"] == "nl34-linknet" and props["normalization_std"] == "0.3125,0.3125,0.3125"
    assert load_backend(artifacts[1], backend="onnxruntime").describe()["metadata"]["nltool_version"]


def test_unreadable_onnx_is_a_backend_error(tmp_path: Path) -> None:
    (tmp_path / "bad.onnx").write_bytes(b"not a protobuf")
    with pytest.raises(BackendError, match="cannot read the ONNX file .*bad.onnx: it is truncated or not an ONNX"):
        load_backend(tmp_path / "bad.onnx")


def test_foreign_onnx_is_refused(tmp_path: Path) -> None:
    torch.onnx.export(torch.nn.Conv2d(3, 1, 1).eval(), (torch.zeros(1, 3, 8, 8),), str(tmp_path / "other.onnx"),
                      dynamo=True, input_names=["x"], output_names=["y"], verbose=False)
    with pytest.raises(BackendError, match="not an nltool artifact: expected input 'image'"):
        load_backend(tmp_path / "other.onnx")


def test_unknown_artifact_type(tmp_path: Path) -> None:
    (tmp_path / "model.bin").write_bytes(b"x")
    with pytest.raises(BackendError, match="cannot tell which backend runs .*model.bin"):
        load_backend(tmp_path / "model.bin")


def test_tensorrt_backend_fails_at_once_without_gpu(tmp_path: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is visible; this test covers machines without one")
    (tmp_path / "m.plan").write_bytes(b"\x00")
    with pytest.raises(BackendError, match=r"TensorRT needs a CUDA GPU and none is visible|"
                                           r"pip install 'nltool\[trt\]' on a CUDA host"):
        load_backend(tmp_path / "m.plan")


def test_predict_with_an_onnx_model_never_imports_torch(artifacts: tuple[Path, Path], tmp_path: Path) -> None:
    """Start-up: an ONNX run pays for onnxruntime, not for torch (about 2-5 s of imports here)."""
    from PIL import Image

    Image.fromarray(np.full((40, 60, 3), 128, np.uint8)).save(tmp_path / "a.png")
    code = ("import sys; from nltool.app.cli import main; sys.argv = ['nltool', 'predict', 'a.png', '--model', "
            f"{str(artifacts[1])!r}, '--out', 'out', '--tta', 'd4', '--scales', '0.5,1']\n"
            "try:\n    main()\nexcept SystemExit as done:\n    assert not done.code, done.code\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\nprint('ok')")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stderr
    assert (tmp_path / "out" / "a_mask.png").is_file()


def _tiny_artifact(path: Path, factor: float) -> Path:
    """An nltool-shaped ONNX model (``image`` in, ``prob`` out) that multiplies by ``factor`` twice."""
    scale = onnx.numpy_helper.from_array(np.array(factor, np.float32), "factor")
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("Mul", ["image", "factor"], ["small"]),
         onnx.helper.make_node("Mul", ["small", "factor"], ["prob"])], "tiny",
        [onnx.helper.make_tensor_value_info("image", onnx.TensorProto.FLOAT, [None, 3, None, None])],
        [onnx.helper.make_tensor_value_info("prob", onnx.TensorProto.FLOAT, [None, 3, None, None])], [scale])
    onnx.save_model(onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 18)]), path)
    return path


def test_sessions_flush_denormals_to_zero_as_predict_runs_them(tmp_path: Path) -> None:
    """1e-20 × 1e-20 = 1e-40 is denormal: nltool's backend gives 0 (the NL attention's denormal softmax
    made Intel CPUs 2.5× slower), a plain onnxruntime session in a fresh process keeps 1e-40. The
    flush reaches the loading thread's own float arithmetic too (onnxruntime sets its flags), as the
    docs say."""
    model = _tiny_artifact(tmp_path / "tiny.onnx", 1e-20)
    ones = "np.ones((1, 3, 4, 4), np.float32)"
    nltool_run = ("import numpy as np\n"
                  "from nltool.inference.backends.onnxruntime_backend import OnnxRuntimeBackend\n"
                  f"print(OnnxRuntimeBackend({str(model)!r}, device='cpu').run({ones}).max())\n"
                  "print(np.float32(1e-20) * np.float32(1e-20))")
    plain_run = ("import numpy as np, onnxruntime as ort\n"
                 f"s = ort.InferenceSession({str(model)!r}, providers=['CPUExecutionProvider'])\n"
                 f"print(s.run(None, {{'image': {ones}}})[0].max())\n"
                 "print(np.float32(1e-20) * np.float32(1e-20))")
    outputs = [[float(line) for line in subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                                       check=True, timeout=120).stdout.split()]
               for code in (nltool_run, plain_run)]
    assert outputs[0] == [0.0, 0.0]
    assert outputs[1] == [pytest.approx(1e-40, rel=1e-3)] * 2
