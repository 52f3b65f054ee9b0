"""Settings come from flags and MODELSERVE_* variables, and are built, never imported."""

import subprocess
import sys
from pathlib import Path

from pydantic_settings import CliApp

from service.settings import Settings


def test_environment_variables(monkeypatch):
    monkeypatch.setenv("MODELSERVE_MODEL_REPOSITORY", "/srv/models")
    monkeypatch.setenv("MODELSERVE_PORT", "9001")
    monkeypatch.setenv("MODELSERVE_PROVIDERS", "CUDAExecutionProvider, CPUExecutionProvider")
    settings = Settings()
    assert settings.model_repository == Path("/srv/models") and settings.port == 9001
    assert settings.providers == ["CUDAExecutionProvider", "CPUExecutionProvider"]


def test_flags_win_over_environment(monkeypatch):
    monkeypatch.setenv("MODELSERVE_PORT", "9001")
    settings = CliApp.run(Settings, cli_args=["--port", "9002", "--model-repository", "/x", "--log-level", "debug"])
    assert settings.port == 9002 and settings.model_repository == Path("/x") and settings.log_level == "debug"


def test_settings_round_trip_through_the_environment(monkeypatch):
    original = Settings(port=1234, providers=["CPUExecutionProvider"], intra_op_num_threads=2)
    for key, value in original.to_env().items():
        monkeypatch.setenv(key, value)
    assert Settings() == original


def test_cli_help_lists_the_flags():
    result = subprocess.run([sys.executable, "-m", "service", "--help"], check=False, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    for flag in ("--model-repository", "--host", "--port", "--log-level", "--intra-op-num-threads"):
        assert flag in result.stdout


def test_bad_flag_value_is_refused():
    result = subprocess.run([sys.executable, "-m", "service", "--port", "notaport"], check=False, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0


def test_grpc_transport_from_flag_and_environment(monkeypatch):
    monkeypatch.delenv("MODELSERVE_GRPC_TRANSPORT", raising=False)
    assert Settings().grpc_transport == "asyncio"  # the default since branch grpc-floor
    monkeypatch.setenv("MODELSERVE_GRPC_TRANSPORT", "grpcio")
    assert Settings().grpc_transport == "grpcio"
    assert CliApp.run(Settings, cli_args=["--grpc-transport", "asyncio"]).grpc_transport == "asyncio"
