"""Every image mode, band count, dtype and format becomes a mask of the image's own size or an
``NltoolError`` with the documented message: through the reader and pipeline (a property-based test),
``nltool predict``, and a real TorchServe, which never answers 5xx for them."""

from __future__ import annotations

import io
import json
import shutil
import tempfile
from collections.abc import Callable
from datetime import timedelta
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import pytest
from conftest import sharp_linknet
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from image_cases import (
    PILLOW_MODES,
    ImageCase,
    encode,
    expected_refusal,
    pillow_layouts,
    raster_layouts,
    table_cases,
)
from PIL import Image
from typer.testing import CliRunner

from nltool.app.cli import app
from nltool.errors import NltoolError
from nltool.export.onnx_export import export_onnx
from nltool.imagery import encode_png, open_image
from nltool.inference import InferencePipeline, PipelineConfig, load_backend
from nltool.inference.jobs import write_output

runner = CliRunner()
HAS_RASTERIO = find_spec("rasterio") is not None
LAYOUTS = pillow_layouts() + (raster_layouts() if HAS_RASTERIO else [])
MAX_SIDE = 3000
MAX_AREA = 100_000
"""Sides up to 3000 px, areas up to 0.1 megapixel: long thin strips and odd sizes, each case cheap
enough (ONNX LinkNet on 2 idle cores: at most ~0.2 s) for the property test to stay under a minute.
Bigger images (several tiles each way) go through predict and TorchServe below."""
ISSUE_PALETTE_PNG = ImageCase("P", "PNG", 1100, 1037, seed=7)
"""A palette PNG spanning several 1024-pixel tiles both ways (palette PNGs once crashed predict)."""
DOCS = Path(__file__).resolve().parents[2] / "docs" / "inference.md"


@pytest.fixture(scope="module")
def onnx_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random LinkNet as ONNX (onnxruntime runs it ~4× faster than PyTorch here); its head is
    scaled so masks hold both road and background."""
    model = sharp_linknet()
    return export_onnx(model, tmp_path_factory.mktemp("model") / "linknet.onnx")


@pytest.fixture(scope="module")
def pipeline(onnx_model: Path) -> InferencePipeline:
    """The default pipeline (1024 tiles, no TTA) on the ONNX model, on CPU, refusing images over
    4 megapixels (as a server would), so a damaged header cannot ask for a huge inference."""
    return InferencePipeline(load_backend(onnx_model, device="cpu"), PipelineConfig(max_pixels=4_000_000))


def predict_bytes(pipeline: InferencePipeline, data: bytes) -> np.ndarray | NltoolError:
    """What predict and the handler do with these bytes: the PNG mask as an array, or the error."""
    try:
        with open_image(data, max_pixels=pipeline.config.max_pixels) as reader, tempfile.TemporaryDirectory() as tmp:
            path = write_output(pipeline, reader, Path(tmp) / "mask.png", "png").path
            return np.asarray(Image.open(path))
    except NltoolError as exc:
        return exc


def check_outcome(case: ImageCase, outcome: np.ndarray | NltoolError | tuple[int, str]) -> None:
    """A 0/255 mask or a refusal with a message. A whole file becomes a mask of its own size, or is
    refused exactly when the table says so, with the documented message; a truncated or damaged
    one may be either (a damaged header may even claim another size)."""
    refusal = expected_refusal(case)
    if isinstance(outcome, np.ndarray):
        assert outcome.ndim == 2 and set(np.unique(outcome).tolist()) <= {0, 255}, case.label
        if case.whole:
            assert refusal is None, f"{case.label} should be refused: {refusal}"
            assert outcome.shape == (case.height, case.width), case.label
        return
    message = str(outcome if isinstance(outcome, NltoolError) else outcome[1])
    assert message.strip(), case.label
    if case.whole:
        assert refusal is not None and refusal in message, f"{case.label}: {message}"


@st.composite
def image_cases(draw: st.DrawFn) -> ImageCase:
    """Any layout and format, any size (1 px to 3000 px a side, odd sizes); whole, truncated at
    any point, or with one byte inverted anywhere."""
    layout, fmt = draw(st.sampled_from(LAYOUTS))
    long_side = draw(st.integers(1, MAX_SIDE))
    short_max = max(1, min(long_side, MAX_AREA // long_side))
    short_side = draw(st.integers(min(32, short_max), short_max) | st.integers(1, short_max))
    width, height = (long_side, short_side) if draw(st.booleans()) else (short_side, long_side)
    damage = draw(st.sampled_from(["none", "none", "truncated", "flipped"]))
    # fractions of the file; no subnormals: the onnxruntime backend this module loads flushes them to
    # zero on the loading thread (docs/inference.md), and hypothesis refuses to draw them then
    fraction = st.floats(0.0, 1.0, exclude_max=True, allow_subnormal=False)
    keep = draw(fraction) if damage == "truncated" else 1.0
    flip = draw(fraction) if damage == "flipped" else None
    return ImageCase(layout, fmt, width, height, seed=draw(st.integers(0, 2**16)), keep=keep, flip=flip)


EXAMPLES = [
    ImageCase("P", "PNG", 331, 301),
    ImageCase("RGB", "PNG", 1, 1),
    ImageCase("P+t", "PNG", 32, 32),
    ImageCase("RGB", "JPEG", 33, 2999),
    ImageCase("F", "TIFF", 31, 64),
    ImageCase("P", "PNG", 300, 200, keep=0.5),
    ImageCase("RGB", "JPEG", 300, 200, keep=0.999),
    ImageCase("RGB", "PNG", 64, 64, flip=0.05),
    *([ImageCase("3xuint16", "GeoTIFF", 2999, 33), ImageCase("4x16", "PNG16", 40, 40, keep=0.7)]
      if HAS_RASTERIO else []),
]
"""Cases always tried besides the generated ones: size edges, long strips, truncations."""


def _with_examples(test: Callable[..., None]) -> Callable[..., None]:
    """Add every case of :data:`EXAMPLES` as a hypothesis ``@example``."""
    for case in reversed(EXAMPLES):
        test = example(case=case)(test)
    return test


@pytest.mark.slow
@settings(max_examples=200, deadline=timedelta(seconds=30), derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(case=image_cases())
@_with_examples
def test_every_input_becomes_a_mask_of_its_size_or_an_nltool_error(pipeline: InferencePipeline,
                                                                     case: ImageCase) -> None:
    """Any generated input, through the reader and pipeline as predict and the handler run them.

    Settings: 200 derandomized examples (the same ones every run, so CI is not flaky) plus the
    explicit ones; ~15-20 s on 2 busy cores after the ~10 s ONNX export. The deadline (30 s per
    example, ~100× the typical case) catches a decoder that hangs.
    """
    outcome = predict_bytes(pipeline, encode(case))
    kind = "mask" if isinstance(outcome, np.ndarray) else f"refused ({type(outcome).__name__})"
    event(f"{kind}, {'whole file' if case.whole else 'truncated' if case.keep < 1 else 'one byte inverted'}")
    check_outcome(case, outcome)


def test_docs_table_has_a_row_for_every_mode() -> None:
    """docs/inference.md lists every Pillow mode, the rasters, and the refusal messages tested here."""
    text = DOCS.read_text()
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    for mode in PILLOW_MODES:
        assert any(f"`{mode}`" in row.split("|")[1] for row in rows), mode
    for phrase in ("choose the RGB bands", "nltool needs at least 32×32", "truncated or corrupt",
                   "16 bits per colour channel", "uint8", "uint16", "int16", "float32"):
        assert phrase in text, phrase


def _write_inputs(cases: list[ImageCase], folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for case in cases:
        path = folder / f"{case.label}{case.suffix}"
        path.write_bytes(encode(case))
        paths.append(path)
    return paths


@pytest.mark.slow
def test_every_table_mode_round_trips_through_predict(onnx_model: Path, tmp_path: Path) -> None:
    """One ``nltool predict`` over every accepted mode (a mask of each image's size), and one per
    refused layout (exit 1 with the documented message, nothing written)."""
    cases = [*table_cases(HAS_RASTERIO), ISSUE_PALETTE_PNG, ImageCase("RGB", "PNG", 31, 500)]
    accepted = [case for case in cases if expected_refusal(case) is None]
    refused = [case for case in cases if expected_refusal(case) is not None]
    out = tmp_path / "out"
    paths = _write_inputs(accepted, tmp_path / "ok")
    result = runner.invoke(app, ["predict", *map(str, paths), "--model", str(onnx_model), "--out", str(out),
                                 "--device", "cpu"])
    assert result.exit_code == 0, result.output
    for case, path in zip(accepted, paths, strict=True):
        mask = np.asarray(Image.open(out / f"{path.stem}_mask.png"))
        assert mask.shape == (case.height, case.width), case.label
    assert refused, "the table has refused layouts"
    for case, path in zip(refused, _write_inputs(refused, tmp_path / "refused"), strict=True):
        result = runner.invoke(app, ["predict", str(path), "--model", str(onnx_model), "--out",
                                     str(tmp_path / "none"), "--device", "cpu"])
        assert result.exit_code == 1 and expected_refusal(case) in result.output, (case.label, result.output)
        assert "Traceback" not in result.output
    assert not (tmp_path / "none").exists() or not any((tmp_path / "none").iterdir())


def _broken_onnx(path: Path) -> Path:
    """An ONNX with nltool's input and output names that answers two probability maps per tile:
    the pipeline loads it, then fails with a plain (non-nltool) ValueError on every request."""
    import onnx
    from onnx import TensorProto, helper

    image = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["n", 3, "h", "w"])
    prob = helper.make_tensor_value_info("prob", TensorProto.FLOAT, ["n2", 1, "h", "w"])
    nodes = [helper.make_node("ReduceMean", ["image"], ["grey"], axes=[1], keepdims=1),
             helper.make_node("Concat", ["grey", "grey"], ["twice"], axis=0),
             helper.make_node("Sigmoid", ["twice"], ["prob"])]
    graph = helper.make_graph(nodes, "broken", [image], [prob])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def test_handler_answers_500_json_for_a_failure_that_is_not_the_clients(tmp_path: Path) -> None:
    """A non-nltool exception inside the pipeline becomes a 500 JSON answer; the handler returns
    normally (TorchServe's worker keeps serving) instead of raising (TorchServe's bare 503)."""
    pytest.importorskip("ts", reason="TorchServe (the [serve] extra) is not installed")
    from ts.context import Context, RequestProcessor

    from nltool.serving.handler import NLLinkNetHandler

    _broken_onnx(tmp_path / "broken.onnx")
    context = Context("broken", str(tmp_path), {"model": {"serializedFile": "broken.onnx"}}, 1, None, "0.12",
                      model_yaml_config={"minWorkers": 1, "nltool": {}})
    context.request_processor = [RequestProcessor({}), RequestProcessor({})]
    handler = NLLinkNetHandler()
    handler.initialize(context)
    handler.context = context
    rows = [{"body": encode_png(np.zeros((64, 64, 3), np.uint8))}, {"body": b"not an image"}]
    answers = handler.postprocess(handler.inference(handler.preprocess(rows)))
    internal, bad = (json.loads(answer) for answer in answers)
    assert context.get_response_status(0) == (500, "Internal Server Error")
    assert internal["code"] == 500 and internal["type"] == "InternalError"
    assert internal["message"].startswith("nltool failed on this request (ValueError: ")
    assert context.get_response_status(1)[0] == 400 and "is not a PNG, JPEG or TIFF/GeoTIFF image" in bad["message"]


SERVED_SAMPLE = [
    *table_cases(HAS_RASTERIO),
    ISSUE_PALETTE_PNG,
    ImageCase("RGB", "PNG", 1, 1),
    ImageCase("L", "JPEG", 2999, 33, seed=3),
    ImageCase("P+t", "PNG", 300, 200, seed=4, keep=0.5),
    ImageCase("RGBA", "TIFF", 120, 90, seed=5, keep=0.6),
    ImageCase("RGB", "JPEG", 200, 150, seed=6, keep=0.9),
    ImageCase("F", "TIFF", 64, 48, seed=8, keep=0.3),
    ImageCase("RGB", "PNG", 64, 64, seed=11, flip=0.05),
    ImageCase("L", "JPEG", 64, 64, seed=12, flip=0.01),
    *([ImageCase("3xuint16", "GeoTIFF", 150, 100, seed=9, keep=0.7),
       ImageCase("4x16", "PNG16", 100, 80, seed=10, keep=0.8)] if HAS_RASTERIO else []),
]
"""A fixed sample of the generated cases: the whole table, size extremes, truncated and damaged files."""


@pytest.fixture(scope="module")
def served(onnx_model: Path, tmp_path_factory: pytest.TempPathFactory):
    """One archive of the ONNX model on a real TorchServe (free ports, loopback, token auth)."""
    pytest.importorskip("ts", reason="TorchServe (the [serve] extra) is not installed")
    if shutil.which("java") is None:
        pytest.skip("TorchServe needs Java (a JDK 17) on the PATH")
    from nltool.serving.server import LocalTorchServe, free_ports

    folder = tmp_path_factory.mktemp("serve-modes")
    ports = free_ports()
    store = folder / "store"
    result = runner.invoke(app, [
        "package", "--model", str(onnx_model), "--out", str(store), "--name", "modes",
        "--inference-port", str(ports.inference), "--management-port", str(ports.management),
        "--metrics-port", str(ports.metrics), "--grpc-port", str(ports.grpc_inference),
        "--grpc-management-port", str(ports.grpc_management)])
    assert result.exit_code == 0, result.output
    with LocalTorchServe(store, ["modes"], folder, ports) as server:
        yield server


@pytest.mark.slow
def test_served_model_answers_every_case_without_a_5xx(served) -> None:
    """Each case of the fixed sample over REST: a PNG mask of the image's size, or a 4xx JSON body
    with the documented message; never a 5xx, and the worker still serves afterwards."""
    import requests

    server = served
    url = f"{server.url}/predictions/modes"
    headers = {"Authorization": f"Bearer {server.token()}", "Content-Type": "application/octet-stream"}
    with requests.Session() as session:
        for case in SERVED_SAMPLE:
            response = session.post(url, data=encode(case), headers=headers, timeout=300)
            assert response.status_code < 500, (case.label, response.status_code, response.text)
            if response.status_code == 200:
                outcome: np.ndarray | tuple[int, str] = np.asarray(Image.open(io.BytesIO(response.content)))
            else:
                body = response.json()
                assert 400 <= response.status_code < 500 and body["code"] == response.status_code
                outcome = (response.status_code, body["message"])
            check_outcome(case, outcome)
        good = session.post(url, data=encode_png(np.zeros((96, 96, 3), np.uint8)), headers=headers, timeout=300)
    assert good.status_code == 200 and Image.open(io.BytesIO(good.content)).size == (96, 96)
