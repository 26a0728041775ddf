"""Serving stage: the TorchServe handler, archive packaging, REST and gRPC clients (issue #6)."""
