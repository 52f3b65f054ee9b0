"""The provider fallback line: news on a CPU-only install, a warning only when something failed."""

import json
import logging

import onnxruntime as ort
import pytest

from service.runtime import fallback_level
from tests import onnx_models
from tests.conftest import Server


def test_a_provider_this_build_lacks_is_info_and_an_unknown_one_a_warning():
    assert fallback_level("CUDAExecutionProvider") == logging.INFO
    assert fallback_level("TensorrtExecutionProvider") == logging.INFO
    assert fallback_level("CudaExecutionProvider") == logging.WARNING  # a typo in a config


def test_a_cpu_only_server_says_so_once_without_a_warning(tmp_path):
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime build has CUDA: there is no CPU-only fallback to see")
    for name in ("a", "b"):
        onnx_models.save(onnx_models.add_constant(1.0), tmp_path / "models", name)
    server = Server(tmp_path / "models", env={"MODELSERVE_LOG_LEVEL": "info"})  # default providers
    try:
        server.wait_ready()
    finally:
        server.stop()
    lines = [json.loads(line) for line in server.log().splitlines() if line.startswith("{")]
    about_cuda = [line for line in lines if "CUDAExecutionProvider" in line["message"]]
    assert [line["level"] for line in about_cuda] == ["info"], about_cuda
    assert "not in this onnxruntime build" in about_cuda[0]["message"]
