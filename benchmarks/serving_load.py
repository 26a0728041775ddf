"""Load on a real local TorchServe: requests/s, latency percentiles and the serving overhead.

    python -m benchmarks.serving_load --json /tmp/serving_load.json

Exports the model to ONNX (random ``--arch`` weights unless ``--checkpoint``: timing does not
depend on the weights), packages it with ``nltool package``'s code, starts TorchServe on free
loopback ports (``--workers`` workers) and sends one synthetic ``--size``² PNG scene, for each
``--tta`` and each ``--concurrency`` level, from that many client threads (closed loop: each
thread sends its next request when the previous one is answered). A level sends ``--requests``
requests with tta none and ``--d4-requests`` otherwise, and at least as many as its concurrency,
so that every client thread has a request in flight. Each TTA is warmed up once before timing,
and every answer must be byte-identical to the warm-up's mask, or the script stops.

Printed: requests/s and client-side p50/p95/p99 latency (seconds), and the backend share: the
server summary's backend seconds (inside onnxruntime) over the client-side latency, summed over
the level's requests. One minus that share is the serving overhead (decode + tiling + encode +
transport + queueing); at concurrency 1 nothing queues, so with tta none it is the end-to-end
overhead the goal is about (< 15%). Above concurrency 1 the requests wait for the worker(s), and
that queueing (in ``transport+queue`` = client latency - handler time) dominates the rest.
Requests ask for the JSON summary (the mask in base64 beside the per-stage seconds), which costs a
little more to send than the bare mask.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import machine_line, model_from, scene
from nltool.export.onnx_export import export_onnx
from nltool.imagery import encode_png
from nltool.inference import PipelineConfig
from nltool.serving.client import BaseClient, GrpcClient, RestClient
from nltool.serving.package import package_model
from nltool.serving.server import LocalOipServer, LocalTorchServe, free_ports
from nltool.serving.settings import ServingSettings

MODEL_NAME = "nllinknet"
STAGES = ("backend", "decode", "tiling", "encode")
GOAL = 0.15


class LoadError(RuntimeError):
    """An answer that differs from the reference mask or does not describe the request."""


def make_client(transport: str, server: LocalTorchServe | LocalOipServer) -> BaseClient:
    """A client for the served model; no retries (a 503 must show, not hide in the latency)."""
    if isinstance(server, LocalOipServer):
        from nltool.serving.oip_client import OipClient

        target = server.grpc_target if transport == "grpc" else server.url
        return OipClient(target, MODEL_NAME, timeout=3600.0, retries=0, grpc=transport == "grpc")
    if transport == "grpc":
        return GrpcClient(server.grpc_target, MODEL_NAME, token=server.token(), timeout=3600.0, retries=0)
    return RestClient(server.url, MODEL_NAME, token=server.token(), timeout=3600.0, retries=0)


def start_server(kind: str, onnx_path: Path, folder: Path, settings: ServingSettings,
                 workers: int) -> LocalTorchServe | LocalOipServer:
    """TorchServe on a store packaged here, or ``nltool serve``, on free loopback ports (not yet started)."""
    if kind == "oip":
        return LocalOipServer(onnx_path, folder / "oip.log", name=MODEL_NAME,
                              args=["--workers", str(workers), "--device", "cpu", "--backend", "onnxruntime"])
    ports = free_ports(workers)  # includes a worker socket range of its own
    store = folder / "store"
    package_model(onnx_path, store, name=MODEL_NAME, settings=settings, workers=workers, ports=ports, force=True)
    return LocalTorchServe(store, [MODEL_NAME], folder / "server", ports)


def predicted_mask(onnx_path: Path, image: Path, tta: str, folder: Path) -> bytes:
    """The mask ``nltool predict`` writes for ``image`` (what every served answer must equal)."""
    out = folder / f"predict_{tta}"
    command = [sys.executable, "-m", "nltool", "predict", str(image), "--model", str(onnx_path), "--out", str(out),
               "--tta", tta, "--device", "cpu", "--backend", "onnxruntime", "--force"]
    subprocess.run(command, check=True, capture_output=True)
    return (out / f"{image.stem}_mask.png").read_bytes()


def one_request(client: BaseClient, image: bytes, tta: str) -> tuple[float, dict[str, Any], bytes]:
    """(client-side seconds, the server's summary, the mask bytes) for one request."""
    started = time.perf_counter()
    mask, summary = client.predict_with_summary(image, tta=tta)
    return time.perf_counter() - started, summary, mask


def run_level(client: BaseClient, image: bytes, tta: str, concurrency: int, requests: int,
              reference: bytes, size: int, server: str) -> dict[str, Any]:
    """``requests`` requests from ``concurrency`` threads; every mask checked against ``reference``."""
    pool = ThreadPoolExecutor(max_workers=concurrency)
    try:
        started = time.perf_counter()
        futures = [pool.submit(one_request, client, image, tta) for _ in range(requests)]
        results = [future.result() for future in futures]
        wall = time.perf_counter() - started
    finally:  # on Ctrl-C, do not send the requests still waiting for a thread
        pool.shutdown(wait=False, cancel_futures=True)
    for i, (_, summary, mask) in enumerate(results):
        if mask != reference:
            raise LoadError(f"{server}, tta {tta}, concurrency {concurrency}, request {i}: the mask differs from "
                            f"nltool predict's ({len(mask)} vs {len(reference)} bytes) for the same image")
        if (summary.get("tta"), summary.get("width"), summary.get("height")) != (tta, size, size):
            raise LoadError(f"tta {tta}, concurrency {concurrency}, request {i}: the summary describes another "
                            f"request: {summary}")
    latencies = np.array([latency for latency, _, _ in results])
    seconds = {stage: np.array([s["seconds"][stage] for _, s, _ in results]) for stage in (*STAGES, "handler")}
    total = float(latencies.sum())
    shares = {stage: float(seconds[stage].sum()) / total for stage in STAGES}
    shares["transport+queue"] = float((latencies - seconds["handler"]).sum()) / total
    p50, p95, p99 = (float(np.percentile(latencies, q)) for q in (50, 95, 99))
    return {
        "server": server, "tta": tta, "concurrency": concurrency, "requests": requests, "wall_seconds": wall,
        "requests_per_second": requests / wall, "p50": p50, "p95": p95, "p99": p99,
        "backend_share": shares["backend"], "overhead_share": 1.0 - shares["backend"], "shares": shares,
        "tiles": results[0][1]["tiles"], "backend_images": results[0][1]["backend_images"],
        "latencies": latencies.tolist(),
        "server_seconds": [summary["seconds"] for _, summary, _ in results],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, help="a trained checkpoint (default: random weights of --arch)")
    parser.add_argument("--arch", default="nl34-linknet")
    parser.add_argument("--size", type=int, default=512, help="scene side in pixels")
    parser.add_argument("--requests", type=int, default=32, help="requests per concurrency level with tta none")
    parser.add_argument("--d4-requests", type=int, default=4,
                        help="requests per concurrency level with another tta (d4 costs 8 backend passes)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16], help="client threads per level")
    parser.add_argument("--tta", nargs="+", default=["none"], choices=["none", "flip", "d4"])
    parser.add_argument("--servers", nargs="+", default=["torchserve", "oip"], choices=["torchserve", "oip"],
                        help="torchserve: TorchServe's own API; oip: nltool serve (KServe's ModelServer, the Open "
                             "Inference Protocol through tritonclient)")
    parser.add_argument("--workers", type=int, default=1, help="TorchServe workers / nltool serve model instances")
    parser.add_argument("--transport", choices=["rest", "grpc"], default="rest")
    parser.add_argument("--out", type=Path,
                        help="folder for the artifact, model store and servers (default: temporary)")
    parser.add_argument("--json", type=Path, help="also write every measurement here")
    args = parser.parse_args()
    if min(args.concurrency) < 1 or args.requests < 1 or args.d4_requests < 1 or args.workers < 1:
        parser.error("--concurrency, --requests, --d4-requests and --workers must be positive")

    command = "python -m benchmarks.serving_load " + shlex.join(sys.argv[1:])
    model = model_from(args.checkpoint, args.arch)
    image = encode_png(scene(args.size))
    load_before = os.getloadavg()[0]
    settings = ServingSettings(pipeline=PipelineConfig(tta="none"))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.out or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        onnx_path = export_onnx(model, folder / "model.onnx")
        (folder / "scene.png").write_bytes(image)
        references = {tta: predicted_mask(onnx_path, folder / "scene.png", tta, folder) for tta in args.tta}
        for kind in args.servers:
            with start_server(kind, onnx_path, folder, settings, args.workers) as server:
                client = make_client(args.transport, server)
                try:
                    for tta in args.tta:
                        client.predict(image, tta=tta)  # warm-up
                        for concurrency in args.concurrency:
                            requests = max(args.requests if tta == "none" else args.d4_requests, concurrency)
                            print(f"... {kind}, tta {tta}, concurrency {concurrency}: {requests} requests",
                                  file=sys.stderr, flush=True)
                            rows.append(run_level(client, image, tta, concurrency, requests, references[tta],
                                                  args.size, kind))
                finally:
                    close = getattr(client, "close", None)  # the gRPC and OIP clients hold connections
                    if close is not None:
                        close()

    load_after = os.getloadavg()[0]
    weights = f"trained: {args.checkpoint}" if args.checkpoint else "random weights"
    header = (f"# {args.arch} ({weights}), ONNX on onnxruntime CPU, {args.size}×{args.size} PNG scene, "
              f"TorchServe {importlib.metadata.version('torchserve')} / KServe {importlib.metadata.version('kserve')}"
              f", {args.workers} worker(s), {args.transport}, tile {settings.pipeline.tile}, "
              f"overlap {settings.pipeline.overlap}")
    print(machine_line())
    print(header)
    print(f"# {command}")
    print(f"# 1-minute load average: {load_before:.2f} before, {load_after:.2f} after "
          f"({os.cpu_count()} CPUs)")
    print()
    print("| server | tta | concurrency | requests | req/s | p50 s | p95 s | p99 s | backend share |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['server']} | {r['tta']} | {r['concurrency']} | {r['requests']} | {r['requests_per_second']:.3f} | "
              f"{r['p50']:.2f} | {r['p95']:.2f} | {r['p99']:.2f} | {r['backend_share']:.1%} |")
    print()
    print("nltool serve / TorchServe at each level (req/s ratio, p50 and p99 latency ratios):")
    print()
    print("| tta | concurrency | req/s ratio | p50 ratio | p99 ratio |")
    print("|---|---:|---:|---:|---:|")
    for r in rows:
        other = next((t for t in rows if t["server"] == "torchserve" and (t["tta"], t["concurrency"]) == (
            r["tta"], r["concurrency"])), None)
        if r["server"] == "oip" and other is not None:
            ratio = r["requests_per_second"] / other["requests_per_second"]
            print(f"| {r['tta']} | {r['concurrency']} | {ratio:.2f} | {r['p50'] / other['p50']:.2f} | "
                  f"{r['p99'] / other['p99']:.2f} |")
    print()
    print("Share of the summed client-side latency per stage (transport+queue = client latency - handler time):")
    print()
    print("| server | tta | concurrency | backend | decode | tiling | encode | transport+queue | note |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        s = r["shares"]
        note = "no queueing" if r["concurrency"] == 1 else f"queueing dominates ({args.workers} worker(s))"
        print(f"| {r['server']} | {r['tta']} | {r['concurrency']} | {s['backend']:.1%} | {s['decode']:.1%} | "
              f"{s['tiling']:.1%} | {s['encode']:.1%} | {s['transport+queue']:.1%} | {note} |")
    print()
    overhead = {}
    for kind in args.servers:
        base = [r for r in rows if r["server"] == kind and r["tta"] == "none" and r["concurrency"] == 1]
        if not base:
            print(f"{kind}: end-to-end overhead with tta none at concurrency 1: not measured (needs --tta none and "
                  "--concurrency 1)")
            continue
        overhead[kind] = base[0]["overhead_share"]
        verdict = "met" if overhead[kind] < GOAL else "NOT met"
        print(f"{kind}: end-to-end overhead with tta none at concurrency 1: {overhead[kind]:.1%} "
              f"(goal < {GOAL:.0%}: {verdict})")

    if args.json:
        report = {"command": command, "machine": machine_line(), "setup": header.lstrip("# "),
                  "load_average": {"before": load_before, "after": load_after},
                  "overhead_tta_none_concurrency_1": overhead, "goal": GOAL, "levels": rows}
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
