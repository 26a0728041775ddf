"""Serving stage: the TorchServe handler, archive packaging, REST and gRPC clients."""
