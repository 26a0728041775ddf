"""Export stage: ONNX, INT8 quantization, TensorRT engines and parity reports."""
