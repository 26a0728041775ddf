"""--backend / --precision: every rule of the choice, as a pure function, and the cheap facts it reads."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from nltool.errors import BackendError
from nltool.inference.onnx_metadata import read_onnx_metadata
from nltool.inference.selection import (
    Artifact,
    choose_backend,
    cpu_has_native_bf16,
    describe_artifact,
    device_type,
)

EVERYTHING = frozenset({"torch", "onnxruntime", "openvino", "tensorrt"})
CPU_ONLY = frozenset({"torch", "onnxruntime"})
FP32_ONNX = Artifact(Path("model.onnx"), "onnx", "fp32")
INT8_ONNX = Artifact(Path("model.int8.onnx"), "onnx", "int8")
CHECKPOINT = Artifact(Path("model.pt"), "checkpoint", "fp32")
ENGINE = Artifact(Path("model.fp16.plan"), "engine", "fp16")


def _choose(artifact: Artifact, backend: str = "auto", precision: str = "auto", *, device: str = "cpu",
            installed: frozenset[str] = EVERYTHING, bf16: bool = True) -> tuple[str, str]:
    choice = choose_backend(artifact, backend, precision, device=device, installed=installed,  # type: ignore[arg-type]
                            bf16_cpu=bf16)
    return choice.backend, choice.precision


def test_auto_precision_is_the_artifacts_own() -> None:
    assert _choose(FP32_ONNX)[1] == "fp32" and _choose(INT8_ONNX)[1] == "int8"
    assert _choose(CHECKPOINT) == ("torch", "fp32")
    assert _choose(ENGINE, device="cuda") == ("tensorrt", "fp16")


def test_auto_backend_is_the_fastest_installed() -> None:
    assert _choose(FP32_ONNX) == ("openvino", "fp32")
    assert _choose(FP32_ONNX, installed=CPU_ONLY) == ("onnxruntime", "fp32")
    assert _choose(FP32_ONNX, precision="bf16") == ("openvino", "bf16")
    assert _choose(CHECKPOINT, precision="bf16") == ("torch", "bf16")
    assert _choose(FP32_ONNX, device="cuda") == ("onnxruntime", "fp32")  # OpenVINO runs on the CPU only
    choice = choose_backend(FP32_ONNX, device="cpu", installed=CPU_ONLY, bf16_cpu=True)
    assert "openvino would be faster: pip install 'nltool[openvino]'" in choice.summary(FP32_ONNX.path)


def test_an_explicit_backend_is_honoured_or_refused_with_what_to_do() -> None:
    assert _choose(FP32_ONNX, "onnxruntime") == ("onnxruntime", "fp32")
    with pytest.raises(BackendError, match="--backend torch cannot run model.onnx .* use --backend "
                                           "onnxruntime or openvino"):
        _choose(FP32_ONNX, "torch")
    with pytest.raises(BackendError, match=r"--backend openvino is not installed: pip install 'nltool\[openvino\]'"):
        _choose(FP32_ONNX, "openvino", installed=CPU_ONLY)
    with pytest.raises(BackendError, match="--backend must be one of auto, torch"):
        _choose(FP32_ONNX, "tvm")


@pytest.mark.parametrize(("artifact", "precision", "device", "message"), [
    (FP32_ONNX, "int8", "cpu", "INT8 needs an INT8 artifact: nltool export --int8 --calib DIR"),
    (INT8_ONNX, "fp32", "cpu", "is an INT8 model; it runs at int8 only"),
    (CHECKPOINT, "fp16", "cpu", "fp16 runs on CUDA GPUs only"),
    (ENGINE, "auto", "cpu", "is a TensorRT engine: it runs on a CUDA GPU only"),
    (ENGINE, "fp32", "cuda", "build a fp32 engine with nltool export --trt"),
    (FP32_ONNX, "fp64", "cpu", "--precision must be one of"),
])
def test_impossible_precisions_say_what_to_do(artifact: Artifact, precision: str, device: str, message: str) -> None:
    with pytest.raises(BackendError, match=message):
        _choose(artifact, precision=precision, device=device)


def test_bf16_needs_native_support() -> None:
    with pytest.raises(BackendError, match="needs a CPU with native bf16 .* use --precision fp32"):
        _choose(FP32_ONNX, precision="bf16", bf16=False)
    assert cpu_has_native_bf16("processor\t: 0\nflags\t\t: fpu avx512f avx512_bf16 sse\n")
    assert cpu_has_native_bf16("flags\t: amx_bf16 amx_tile\n")
    assert not cpu_has_native_bf16("flags\t: fpu avx2 avx512f\n")
    assert not cpu_has_native_bf16("")


def test_explicit_devices_need_no_probe() -> None:
    assert device_type("cpu", "checkpoint") == "cpu"
    assert device_type("cuda:1", "onnx") == "cuda"
    assert device_type("auto", "engine") == "cuda" and device_type("auto", "openvino") == "cpu"


def _tiny_onnx(path: Path, metadata: dict[str, str]) -> Path:
    image = helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 32, 32])
    prob = helper.make_tensor_value_info("prob", TensorProto.FLOAT, [1, 3, 32, 32])
    weight = helper.make_tensor("w", TensorProto.FLOAT, [300], [0.5] * 300)  # a field longer than 127 bytes
    graph = helper.make_graph([helper.make_node("Sigmoid", ["image"], ["prob"])], "tiny", [image], [prob], [weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    for key, value in metadata.items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, path)
    return path


def test_onnx_metadata_is_read_without_onnx(tmp_path: Path) -> None:
    metadata = {"arch": "nl34-linknet", "quantization": "int8 QDQ (cpu), kept float: stem", "long": "é" * 200}
    path = _tiny_onnx(tmp_path / "m.onnx", metadata)
    assert read_onnx_metadata(path) == metadata
    assert describe_artifact(path).precision == "int8"
    assert describe_artifact(_tiny_onnx(tmp_path / "f.onnx", {"arch": "linknet"})).precision == "fp32"
    (tmp_path / "cut.onnx").write_bytes(path.read_bytes()[:-40])
    with pytest.raises(BackendError, match="cut.onnx: it is truncated or not an ONNX model"):
        read_onnx_metadata(tmp_path / "cut.onnx")


def test_artifact_names_and_missing_files(tmp_path: Path) -> None:
    for name, kind, precision in (("model.int8.plan", "engine", "int8"), ("model.fp32.plan", "engine", "fp32"),
                                  ("model.openvino-int8.xml", "openvino", "int8"),
                                  ("model.int8.xml", "openvino", "int8"), ("m.th", "checkpoint", "fp32")):
        (tmp_path / name).write_bytes(b"x")
        assert (describe_artifact(tmp_path / name).kind, describe_artifact(tmp_path / name).precision) == (
            kind, precision)
    with pytest.raises(BackendError, match="model artifact not found"):
        describe_artifact(tmp_path / "missing.onnx")


def test_auto_runs_the_openvino_int8_ir_with_openvino_at_int8(tmp_path: Path) -> None:
    """What ``nltool export --int8 --int8-engine openvino`` writes is picked by ``--backend auto``."""
    (tmp_path / "model.int8.xml").write_bytes(b"x")
    ir = describe_artifact(tmp_path / "model.int8.xml")
    choice = choose_backend(ir, device="cpu", installed=EVERYTHING, bf16_cpu=False)
    assert (choice.backend, choice.precision) == ("openvino", "int8")
    with pytest.raises(BackendError, match="no backend that runs model.int8.xml at int8 on cpu is installed"):
        choose_backend(ir, device="cpu", installed=frozenset({"onnxruntime", "torch"}), bf16_cpu=False)


def test_compile_needs_a_checkpoint() -> None:
    """One rule for predict, evaluate and package: torch.compile runs checkpoints only."""
    compiled = choose_backend(CHECKPOINT, device="cpu", installed=EVERYTHING, bf16_cpu=True, compile=True)
    assert compiled.backend == "torch"
    with pytest.raises(BackendError, match="--compile applies to checkpoints .*not model.onnx"):
        choose_backend(FP32_ONNX, device="cpu", installed=EVERYTHING, bf16_cpu=True, compile=True)


def test_one_precision_type_with_each_backends_subset() -> None:
    from nltool.inference.backends import torch_options
    from nltool.inference.config import PRECISIONS
    from nltool.inference.selection import PRECISION_OPTIONS, backend_precisions

    assert ("auto", *PRECISIONS) == PRECISION_OPTIONS
    assert backend_precisions("torch") == ("fp32", "bf16", "fp16")
    assert backend_precisions("torch") == torch_options.PRECISIONS
    assert backend_precisions("openvino") == ("fp32", "bf16", "int8")
    assert backend_precisions("onnxruntime") == ("fp32", "int8")
    assert backend_precisions("tensorrt") == ("fp32", "fp16", "int8")
    with pytest.raises(BackendError, match="not supported by the torch backend; use one of fp32, bf16, fp16"):
        torch_options.autocast_dtype("int8", "cpu")
