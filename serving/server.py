"""Local servers: TorchServe, or ``nltool serve`` (:class:`LocalOipServer`), started on free loopback
ports, waited for until a model answers, and stopped.

The demo, the serving tests and the load benchmark all run a real TorchServe; this is the one place
that knows how. TorchServe keeps its pid file in ``$TMPDIR`` and writes ``key_file.json`` and
``logs/`` in the folder it is started from, so each server gets its own folder and is stopped from
there. :class:`LocalTorchServe` is a context manager whose exit stops the server even when the
block was interrupted (Ctrl-C included).
"""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType, TracebackType
from typing import TypeVar

import numpy as np

from nltool.errors import NltoolError
from nltool.imagery import encode_png
from nltool.optional import require
from nltool.serving.client import read_token
from nltool.serving.package import Ports

START_TIMEOUT_S = 120
PROBE = encode_png(np.zeros((64, 64, 3), np.uint8))
"""A request every model answers quickly: what readiness checks send."""


class ServerError(NltoolError):
    """TorchServe could not be started, or did not become ready."""


SOCKET_DIR = Path("/tmp")
"""Where TorchServe's frontend puts worker sockets, whatever $TMPDIR says."""


def free_worker_port(workers: int = 1) -> int:
    """A first worker socket number whose next ``workers`` + 8 sockets no other TorchServe uses.

    Every TorchServe numbers its worker sockets ``/tmp/.ts.sock.9000``, ``.9001``, ... and a
    starting worker removes an existing socket of its name, so a second server on the machine (a
    test run, a benchmark, the demo) would take over the first one's workers.
    """
    rng = random.Random()
    for _ in range(1000):
        first = rng.randrange(20000, 60000)
        if not any((SOCKET_DIR / f".ts.sock.{first + i}").exists() for i in range(workers + 8)):
            return first
    raise ServerError(f"no free range of TorchServe worker sockets in {SOCKET_DIR}")


def _free_loopback_ports(count: int) -> list[int]:
    """``count`` ports on 127.0.0.1 that were free a moment ago."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def free_ports(workers: int = 1) -> Ports:
    """Ports on 127.0.0.1 that were free a moment ago (inference, management, metrics, gRPC x2),
    and a worker socket range no other TorchServe uses."""
    inference, management, metrics, grpc_inference, grpc_management = _free_loopback_ports(5)
    return Ports(inference, management, metrics, grpc_inference, grpc_management, free_worker_port(workers))


_S = TypeVar("_S", bound="_Started")


class _Started:
    """A local server as a context manager: started and ready on entry (stopped if that fails), stopped on exit."""

    def start(self) -> None:
        raise NotImplementedError

    def wait_ready(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self: _S) -> _S:
        try:
            self.start()
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


class LocalTorchServe(_Started):
    """``torchserve --start`` for the models of a store written by ``nltool package``."""

    def __init__(self, store: Path, models: list[str], folder: Path, ports: Ports) -> None:
        # TorchServe runs from ``folder``: relative paths would be read against the wrong folder.
        self.store, self.folder = Path(store).resolve(), Path(folder).resolve()
        self.models, self.ports = models, ports
        self.url = f"http://127.0.0.1:{ports.inference}"
        self.grpc_target = f"127.0.0.1:{ports.grpc_inference}"
        self.env = {**os.environ, "TMPDIR": str(folder)}  # TorchServe keeps its pid file there
        self.started = False

    @property
    def key_file(self) -> Path:
        """Where TorchServe writes its tokens."""
        return self.folder / "key_file.json"

    @property
    def model_log(self) -> Path:
        """The workers' log (handler output and errors)."""
        return self.folder / "logs" / "model_log.log"

    def token(self) -> str:
        """The inference token."""
        return read_token(self.key_file)

    def command(self) -> list[str]:
        """``torchserve --start`` as ``nltool package`` prints it: this store's config, these models."""
        return ["torchserve", "--start", "--ncs", "--model-store", str(self.store), "--ts-config",
                str(self.store / "config.properties"), "--models", *[f"{m}={m}.mar" for m in self.models]]

    def answers(self, requests: ModuleType) -> bool:
        """Whether ping is healthy and every model answers a small image (not raising while starting)."""
        headers = {"Authorization": f"Bearer {self.token()}"}
        ping = requests.get(f"{self.url}/ping", headers=headers, timeout=5)
        post = {**headers, "Content-Type": "application/octet-stream"}
        return bool(ping.ok) and all(requests.post(f"{self.url}/predictions/{m}", data=PROBE, headers=post,
                                                   timeout=60).ok for m in self.models)

    def start(self) -> None:
        """Start the server in the background (returns before the models are loaded)."""
        if shutil.which("torchserve") is None:
            raise ServerError("torchserve is not installed: pip install 'nltool[serve]'")
        if shutil.which("java") is None:
            raise ServerError("TorchServe needs Java 17 (a JDK) on the PATH")
        self.folder.mkdir(parents=True, exist_ok=True)
        command = self.command()
        # Not a pipe: the JVM keeps its stdout open, and reading it would block.
        with (self.folder / "torchserve.out").open("w") as log:
            done = subprocess.run(command, cwd=self.folder, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                  timeout=START_TIMEOUT_S)
        self.started = True
        if done.returncode != 0:
            raise ServerError(f"torchserve --start failed; see {self.folder / 'torchserve.out'}")

    def wait_ready(self, seconds: float = 180.0) -> None:
        """Block until ping is healthy and every model answers a small request."""
        requests = require("requests", "waiting for TorchServe")
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                if self.answers(requests):
                    return
            except (requests.RequestException, NltoolError):
                pass
            time.sleep(1)
        tail = self.model_log.read_text()[-3000:] if self.model_log.exists() else "(no model log)"
        raise ServerError(f"TorchServe did not become ready within {seconds:.0f} s; model log ends:\n{tail}")

    def stop(self) -> None:
        """``torchserve --stop`` from the server's folder (a no-op if it never started)."""
        if self.started:
            subprocess.run(["torchserve", "--stop"], cwd=self.folder, env=self.env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=START_TIMEOUT_S)
            self.started = False


class LocalOipServer(_Started):
    """``nltool serve`` in a child process on 127.0.0.1 (free ports unless given): started and
    waited for by ``with``, stopped (SIGTERM, then kill) on exit. Its output goes to ``log``."""

    def __init__(self, artifact: Path, log: Path, *, args: Sequence[str] = (), token: str | None = None,
                 name: str = "nllinknet") -> None:
        http, grpc = _free_loopback_ports(2)
        self.name, self.token, self.log = name, token, Path(log)
        self.url, self.grpc_target = f"http://127.0.0.1:{http}", f"127.0.0.1:{grpc}"
        self.command = [sys.executable, "-m", "nltool", "serve", "--model", str(artifact), "--name", name,
                        "--http-port", str(http), "--grpc-port", str(grpc), *args]
        if token is not None:
            token_file = self.log.with_suffix(".token")
            token_file.write_text(token)
            self.command += ["--token-file", str(token_file)]
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the server (returns before the model is loaded)."""
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(self.command, stdout=out, stderr=subprocess.STDOUT)

    def wait_ready(self, seconds: float = 180.0) -> None:
        """Block until ``/v2/health/ready`` answers and the model answers a small request."""
        from nltool.serving.client import KServeClient

        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                break
            try:
                if KServeClient(self.url, self.name, self.token, timeout=60, retries=0).predict(PROBE):
                    return
            except NltoolError:
                time.sleep(1)
        tail = self.log.read_text(errors="replace")[-3000:] if self.log.exists() else "(no log)"
        raise ServerError(f"nltool serve did not become ready within {seconds:.0f} s; its log ends:\n{tail}")

    def stop(self) -> None:
        """SIGTERM, then kill after 30 s."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
