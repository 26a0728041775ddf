"""``nltool package`` (TorchServe archive, KServe layouts), ``nltool serve`` (the Open Inference Protocol
on KServe's ModelServer; the server itself is :mod:`nltool.serving.oip`) and ``nltool client`` (ask a
served model)."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from nltool.app.commands.options import (
    AUTO_BACKEND,
    AUTO_PRECISION,
    DEFAULT_FORMAT,
    DEFAULT_SCALES,
    DEFAULT_TTA,
    DEFAULTS,
    ArchOpt,
    BackendOption,
    CompileOpt,
    DeviceOpt,
    FormatOpt,
    MaxPixelsOpt,
    ModelOpt,
    OverlapOpt,
    PairwiseOption,
    PrecisionOption,
    ScalesOpt,
    ThresholdOpt,
    TileOpt,
    TTAOption,
    parse_numbers,
)
from nltool.inference.config import TTAMode
from nltool.serving.oip_options import ServeOptions

if TYPE_CHECKING:
    from nltool.serving.settings import ServingSettings

SERVE = ServeOptions()


class TargetOpt(str, Enum):
    """What ``nltool package`` writes for."""

    torchserve = "torchserve"
    kserve = "kserve"
    kserve_oip = "kserve-oip"


def served_settings(*, tile: int, overlap: int, tta: TTAMode, scales: str, threshold: float, output_format: str,
                    max_pixels: int, arch: Enum | None, pairwise: Enum | None, backend: str, precision: str,
                    compile_model: bool, **extra: object) -> ServingSettings:
    """The serving settings the options of ``serve`` and ``package`` describe (checked here, before any model loads)."""
    from nltool.serving.settings import ServingSettings

    return ServingSettings.from_dict({
        "tile": tile, "overlap": overlap, "tta": tta, "scales": parse_numbers(scales, float, "--scales"),
        "threshold": threshold, "format": output_format, "max_pixels": max_pixels,
        "arch": arch.value if arch else None, "pairwise": pairwise.value if pairwise else None,
        "backend": backend, "precision": precision, "compile": compile_model, **extra})


def package(
    model: ModelOpt,
    out: Annotated[Path, typer.Option(help="Model store folder for <name>.mar and config.properties (--target "
                                           "kserve: the folder to upload, plus inferenceservice.yaml).")],
    name: Annotated[str, typer.Option(help="Model name in TorchServe (the URL is /predictions/<name>).")] = "nllinknet",
    tile: TileOpt = DEFAULTS.tile,
    overlap: OverlapOpt = DEFAULTS.overlap,
    tta: TTAOption = DEFAULT_TTA,
    scales: ScalesOpt = DEFAULT_SCALES,
    threshold: ThresholdOpt = DEFAULTS.threshold,
    output_format: Annotated[FormatOpt, typer.Option("--format", help="Default answer: png mask, tif "
                             "(GeoTIFF for GeoTIFF requests) or prob.")] = DEFAULT_FORMAT,
    max_pixels: MaxPixelsOpt = DEFAULTS.max_pixels,
    workers: Annotated[int, typer.Option(help="TorchServe workers (processes) for this model.")] = 1,
    backend: BackendOption = AUTO_BACKEND,
    precision: PrecisionOption = AUTO_PRECISION,
    compile_model: CompileOpt = False,
    arch: ArchOpt = None,
    pairwise: PairwiseOption = None,
    inference_port: Annotated[int, typer.Option(help="REST inference port on 127.0.0.1.")] = 8080,
    management_port: Annotated[int, typer.Option(help="Management API port on 127.0.0.1.")] = 8081,
    metrics_port: Annotated[int, typer.Option(help="Metrics port on 127.0.0.1.")] = 8082,
    grpc_port: Annotated[int, typer.Option(help="gRPC inference port on 127.0.0.1.")] = 7070,
    grpc_management_port: Annotated[int, typer.Option(help="gRPC management port on 127.0.0.1.")] = 7071,
    worker_port: Annotated[int, typer.Option(help="First worker socket number (/tmp/.ts.sock.N); give each "
                                                  "TorchServe on a machine its own range.")] = 9000,
    force: Annotated[bool, typer.Option(help="Replace an existing archive of the same name.")] = False,
    onnx_tensorrt: Annotated[bool, typer.Option(help="ONNX on GPU workers: use onnxruntime's TensorRT provider "
                                                     "(engines for this pipeline's tile shapes, cached).")] = False,
    tensorrt_cache: Annotated[Path | None, typer.Option(help="Engine cache of --onnx-tensorrt (default: "
                                                             "~/.cache/nltool/onnxruntime-tensorrt).")] = None,
    target: Annotated[TargetOpt, typer.Option(help="torchserve: a model store for torchserve --start; kserve: "
                                                   "the layout KServe's TorchServe runtime loads and an "
                                                   "InferenceService manifest (port options do not apply); "
                                                   "kserve-oip: a Dockerfile running nltool serve and its "
                                                   "ServingRuntime + InferenceService (protocol v2).")] = (
        TargetOpt.torchserve),
    storage_uri: Annotated[str | None, typer.Option(help="--target kserve: where --out will be uploaded (s3://, "
                                                            "gs://, pvc://...); default pvc://nltool-models/<name>. "
                                                            "kserve-oip: where the artifact is (default: in the "
                                                            "image).")
                           ] = None,
    cpu: Annotated[str, typer.Option(help="--target kserve: CPU request and limit per replica.")] = "2",
    memory: Annotated[str, typer.Option(help="--target kserve: memory request and limit per replica.")] = "4Gi",
    gpus: Annotated[int, typer.Option(help="--target kserve: GPUs per replica (nvidia.com/gpu).")] = 0,
    min_replicas: Annotated[int, typer.Option(help="--target kserve: fewest replicas (0 scales to zero).")] = 1,
    max_replicas: Annotated[int, typer.Option(help="--target kserve: most replicas.")] = 1,
) -> None:
    """Package a model as a TorchServe archive and write a loopback-only, token-protected config
    (or, with --target kserve, what KServe's TorchServe runtime loads and its InferenceService)."""
    from nltool.serving.package import Ports, package_model

    settings = served_settings(tile=tile, overlap=overlap, tta=tta.value, scales=scales, threshold=threshold,
                               output_format=output_format.value, max_pixels=max_pixels, arch=arch, pairwise=pairwise,
                               backend=backend.value, precision=precision.value, compile_model=compile_model,
                               onnx_tensorrt=onnx_tensorrt,
                               tensorrt_cache=str(tensorrt_cache) if tensorrt_cache else None)
    if target is TargetOpt.kserve_oip:
        from nltool.serving.kserve import Deployment
        from nltool.serving.kserve_oip import package_for_kserve_oip

        oip = package_for_kserve_oip(model, out, Deployment(storage_uri or "", cpu, memory, gpus, min_replicas,
                                                            max_replicas), name=name, settings=settings, force=force)
        typer.echo(f"Dockerfile: {oip.dockerfile}\nmanifest:   {oip.manifest}\nthen: docker build -t IMAGE {out}, "
                   f"push it, set the ServingRuntime's image in {oip.manifest}, kubectl apply -f {oip.manifest}")
        return
    if target is TargetOpt.kserve:
        from nltool.serving.kserve import Deployment, package_for_kserve

        deployment = Deployment(storage_uri or f"pvc://nltool-models/{name}", cpu, memory, gpus, min_replicas,
                                max_replicas)
        kserve = package_for_kserve(model, out, deployment, name=name, settings=settings, workers=workers,
                                    force=force)
        typer.echo(f"archive: {kserve.mar}\nconfig:  {kserve.config}\nmanifest: {kserve.manifest}\n"
                   f"upload {out}/config and {out}/model-store to {deployment.storage_uri}, then:\n"
                   f"  kubectl apply -f {kserve.manifest}")
        return
    result = package_model(model, out, name=name, settings=settings, workers=workers, force=force,
                           ports=Ports(inference_port, management_port, metrics_port, grpc_port, grpc_management_port,
                                       worker_port))
    typer.echo(f"archive: {result.mar}\nconfig:  {result.config}\nstart TorchServe with:\n  {result.command}")


def client(
    image: Annotated[Path, typer.Argument(help="Image to send (PNG, JPEG, TIFF/GeoTIFF).")],
    out: Annotated[Path, typer.Option(help="Where to write the answer (mask PNG, GeoTIFF or probability PNG).")],
    url: Annotated[str, typer.Option(help="TorchServe REST inference address (used unless --grpc is given).")] = (
        "http://127.0.0.1:8080"),
    grpc: Annotated[str | None, typer.Option(help="host:port of TorchServe's gRPC inference API "
                                                     "(e.g. 127.0.0.1:7070); sends over gRPC instead of REST.")] = None,
    kserve: Annotated[str | None, typer.Option(help="URL of a KServe InferenceService (its status.url); sends "
                                                       "KServe's v1 protocol. No TorchServe token: see "
                                                       "--bearer-token-file.")] = None,
    oip: Annotated[str | None, typer.Option(help="URL of an Open Inference Protocol server's REST API (nltool "
                                                    "serve: http://127.0.0.1:8080).")] = None,
    oip_grpc: Annotated[str | None, typer.Option(help="host:port of an Open Inference Protocol gRPC API (nltool "
                                                         "serve: 127.0.0.1:8081).")] = None,
    bearer_token_file: Annotated[Path | None, typer.Option(help="--kserve, --oip, --oip-grpc: a file holding the "
                                                                   "bearer token the server or KServe's ingress "
                                                                   "expects, if any.")] = None,
    model_name: Annotated[str, typer.Option(help="Model name given to TorchServe.")] = "nllinknet",
    token_file: Annotated[Path, typer.Option(help="TorchServe's key_file.json (written where it was started).")] = Path(
        "key_file.json"),
    tta: Annotated[str | None, typer.Option(help="Override the server's TTA (none, flip, d4), if allowed.")] = None,
    threshold: Annotated[float | None, typer.Option(help="Override the server's threshold.")] = None,
    output_format: Annotated[str | None, typer.Option("--format", help="Override the answer format (png, tif, "
                                                                          "prob; geojson: road network).")] = None,
    summary: Annotated[Path | None, typer.Option(help="Also write the server's JSON summary here (size, road "
                                                         "fraction, tiles, seconds per stage).")] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the answer.")] = 600.0,
    retries: Annotated[int, typer.Option(min=0, help="Retries, with back-off, while the server is busy (503 / "
                                                  "UNAVAILABLE) or still starting (no connection or token file "
                                                  "yet).")] = 3,
    force: Annotated[bool, typer.Option(help="Overwrite --out (and --summary) if they exist.")] = False,
) -> None:
    """Request a road mask from a running TorchServe over REST (default) or gRPC (--grpc), from a KServe
    InferenceService (--kserve), or over the Open Inference Protocol (--oip, --oip-grpc: nltool serve)."""

    from nltool.fileio import atomic_path, write_json
    from nltool.serving.client import (
        BaseClient,
        ClientError,
        GrpcClient,
        KServeClient,
        RestClient,
        wait_for_token,
    )

    for path in (out, summary):
        if path is not None and path.exists() and not force:
            raise ClientError(f"{path} already exists; pass --force to overwrite it")
    if not image.is_file():
        raise ClientError(f"image not found: {image}")
    transport: BaseClient
    bearer = bearer_token_file.read_text().strip() if bearer_token_file else None
    if oip is not None or oip_grpc is not None:
        from nltool.serving.oip_client import OipClient

        transport = OipClient(oip_grpc or oip, model_name, bearer, timeout, retries,  # type: ignore[arg-type]
                              grpc=oip_grpc is not None)
    elif kserve is not None:
        transport = KServeClient(kserve, model_name, bearer, timeout, retries)
    else:
        token = wait_for_token(token_file, retries)
        transport = (GrpcClient(grpc, model_name, token, timeout, retries) if grpc is not None
                     else RestClient(url, model_name, token, timeout, retries))
    if summary is None:
        answer, details = transport.predict(image.read_bytes(), tta=tta, threshold=threshold, fmt=output_format), None
    else:
        answer, details = transport.predict_with_summary(image.read_bytes(), tta=tta, threshold=threshold,
                                                         fmt=output_format)
    with atomic_path(out) as tmp:
        tmp.write_bytes(answer)
    message = f"{image} -> {out} ({len(answer):,} bytes)"
    if summary is not None and details is not None:
        write_json(summary, details)
        message += f"; road fraction {details['road_fraction']:.3f}, summary in {summary}"
    typer.echo(message)


def serve(
    model: ModelOpt,
    name: Annotated[str, typer.Option(help="Model name in the URLs (/v2/models/<name>/infer).")] = SERVE.name,
    http_port: Annotated[int, typer.Option(help="REST port (Open Inference Protocol v2 and KServe v1).")] = (
        SERVE.http_port),
    grpc_port: Annotated[int, typer.Option(help="gRPC port (Open Inference Protocol v2).")] = SERVE.grpc_port,
    host: Annotated[str, typer.Option(help="Address both servers listen on; 0.0.0.0 exposes them to the "
                                           "network (set --token-file then).")] = SERVE.host,
    workers: Annotated[int, typer.Option(min=1, help="Model instances answering requests at the same time "
                                                     "(each loads its own copy of the model).")] = SERVE.workers,
    token_file: Annotated[Path | None, typer.Option(help="A file holding a bearer token every request but the "
                                                         "health probes must send (Authorization: Bearer).")] = None,
    tile: TileOpt = DEFAULTS.tile,
    overlap: OverlapOpt = DEFAULTS.overlap,
    tta: TTAOption = DEFAULT_TTA,
    scales: ScalesOpt = DEFAULT_SCALES,
    threshold: ThresholdOpt = DEFAULTS.threshold,
    output_format: Annotated[FormatOpt, typer.Option("--format", help="Default answer: png mask, tif "
                             "(GeoTIFF for GeoTIFF requests) or prob.")] = DEFAULT_FORMAT,
    max_pixels: MaxPixelsOpt = DEFAULTS.max_pixels,
    device: DeviceOpt = SERVE.device,
    backend: BackendOption = AUTO_BACKEND,
    precision: PrecisionOption = AUTO_PRECISION,
    compile_model: CompileOpt = False,
    arch: ArchOpt = None,
    pairwise: PairwiseOption = None,
) -> None:
    """Serve a model over the Open Inference Protocol (REST and gRPC, KServe's ModelServer) and KServe's
    v1 :predict, until interrupted (Ctrl-C)."""
    from nltool.serving.oip import read_token_file
    from nltool.serving.oip import serve as run_server

    settings = served_settings(tile=tile, overlap=overlap, tta=tta.value, scales=scales, threshold=threshold,
                               output_format=output_format.value, max_pixels=max_pixels, arch=arch, pairwise=pairwise,
                               backend=backend.value, precision=precision.value, compile_model=compile_model)
    token = read_token_file(token_file) if token_file is not None else None
    options = ServeOptions(name=name, host=host, http_port=http_port, grpc_port=grpc_port, workers=workers,
                           token=token, device=device)
    typer.echo(f"serving {model} as {name!r}: REST http://{host}:{http_port}, gRPC {host}:{grpc_port}"
               f"{', bearer token required' if token else ''}", err=True)
    run_server(model, settings, options)
