"""Where and how ``nltool serve`` listens: its settings, in a module light enough for the CLI to read
their defaults without importing the server."""

from __future__ import annotations

from dataclasses import dataclass

from nltool.devices import AUTO_DEVICE


@dataclass(frozen=True)
class ServeOptions:
    """Where and how ``nltool serve`` listens; the command line reads its option defaults from here."""

    name: str = "nllinknet"
    host: str = "127.0.0.1"
    http_port: int = 8080
    grpc_port: int = 8081
    workers: int = 1
    """Model instances answering at the same time (each its own backend, as TorchServe's workers)."""
    token: str | None = None
    device: str = AUTO_DEVICE
