"""Settings of the service: one pydantic-settings class, built by the caller, never at import.

Every field is a CLI flag (`--model-repository`) and an environment variable
(`MODELSERVE_MODEL_REPOSITORY`); the CLI wins over the environment.
"""

import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

CommaList = Annotated[list[str], NoDecode]
SecretList = Annotated[list[SecretStr], NoDecode]  # masked in repr, so never logged


def _default_threads() -> int:
    return max(2, os.cpu_count() or 2)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="MODELSERVE_",
        cli_kebab_case=True,
        cli_prog_name="python -m service",
        cli_implicit_flags=True,
        extra="ignore",
    )

    model_repository: Path = Field(Path("models"), description="folder of models (Triton layout)")
    host: str = Field("127.0.0.1", description="address to listen on")
    port: int = Field(8000, ge=0, le=65535, description="port to listen on")
    grpc_port: int = Field(
        8001, ge=0, le=65535, description="port of the gRPC server (inference.GRPCInferenceService); 0: off"
    )
    grpc_transport: Literal["grpcio", "asyncio"] = Field(
        "asyncio",
        description="what serves gRPC: asyncio (HTTP/2 on the event loop itself, "
        "service/grpc/asyncio_server.py) or grpcio (its synchronous server, calls handed to the loop)",
    )
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"
    workers: int = Field(1, ge=1, description="server processes")

    model_control_mode: Literal["none", "explicit", "poll"] = Field(
        "none",
        description="none: load all at start, no changes; explicit: load --load-model names and "
        "what the API asks; poll: follow the repository's changes on disk",
    )
    load_model: CommaList = Field(
        [], description="models to load at start in explicit mode (repeatable; * for all)"
    )
    repository_poll_secs: float = Field(15.0, gt=0, description="poll mode: seconds between looks")

    providers: CommaList = Field(
        ["CUDAExecutionProvider", "CPUExecutionProvider"],
        description="ONNX Runtime execution providers in fallback order (comma separated); "
        "a model's config.yaml may override",
    )
    intra_op_num_threads: int = Field(1, ge=0, description="threads per ONNX Runtime session")
    inference_threads: int = Field(
        default_factory=_default_threads, ge=1, description="worker threads running sessions"
    )

    max_batch_size: int = Field(
        0, ge=0, description="default dynamic batching bound for models whose config sets none (0: off)"
    )
    max_queue_delay_ms: float = Field(0.0, ge=0, description="default wait for a batch to fill")
    max_queue_size: int = Field(
        1024, ge=1, description="default bound on requests waiting per graph; beyond it, 503"
    )
    max_concurrent_batches: int = Field(2, ge=1, description="batches of one graph running at once")

    max_request_bytes: int = Field(64 * 2**20, ge=1024, description="largest request body")
    max_tensor_elements: int = Field(
        16 * 2**20, ge=1, description="largest element count of one tensor in a request"
    )
    max_json_depth: int = Field(32, ge=2, description="deepest JSON nesting accepted")
    request_timeout_s: float = Field(
        120.0, ge=0, description="seconds a request may take to start its response, then 504 (0: none)"
    )
    request_head_timeout_s: float = Field(
        10.0, gt=0, description="seconds a connection may take to send a request's line and "
        "headers, from connecting or from the request's first byte; then it is closed"
    )
    keep_alive_timeout_s: float = Field(
        5.0, gt=0, description="seconds an idle kept-alive connection stays open (above a load "
        "balancer's own idle timeout, if one sits in front)"
    )
    shutdown_timeout_s: float = Field(
        30.0, ge=0, description="on SIGTERM, seconds to let in-flight requests finish before exiting"
    )

    api_keys: SecretList = Field(
        [], description="bearer tokens for inference and every other non-open route (comma "
        "separated; empty: no key needed)"
    )
    admin_keys: SecretList = Field(
        [], description="bearer tokens for model control (/v2/repository/...); they also pass "
        "wherever an API key does"
    )
    allow_model_control_without_admin_keys: bool = Field(
        False, description="enable model load/unload when no admin keys are set (trusted "
        "networks only); off, those routes answer 403"
    )
    metrics_require_key: bool = Field(False, description="/metrics needs an API or admin key")
    cors_allow_origins: CommaList = Field(
        [], description="origins allowed to call from a browser (comma separated, '*' for "
        "any; empty: CORS off)"
    )
    access_log: bool = Field(
        False, description="one JSON log line per request (off by default, as in Triton: a line costs "
        "up to a tenth of a small request's CPU; the X-Request-ID header is sent either way)"
    )

    @field_validator("providers", "load_model", "api_keys", "admin_keys", "cors_allow_origins", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @model_validator(mode="after")
    def _metrics_key_needs_keys(self) -> "Settings":
        if self.metrics_require_key and not (self.api_keys or self.admin_keys):
            raise ValueError("metrics_require_key needs api_keys or admin_keys")
        return self

    def to_env(self) -> dict[str, str]:
        """The settings as MODELSERVE_* variables, for worker processes started by uvicorn."""
        env = {}
        for name, value in self.model_dump().items():
            if isinstance(value, list):
                value = ",".join(v.get_secret_value() if isinstance(v, SecretStr) else v for v in value)
            env[f"MODELSERVE_{name.upper()}"] = str(value)
        return env
