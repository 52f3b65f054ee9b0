"""modelserve: serve ONNX models over the Open Inference Protocol."""

__version__ = "0.1.0"
