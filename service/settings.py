"""Settings of the service: one pydantic-settings class, built by the caller, never at import.

Every field is a CLI flag (`--model-repository`) and an environment variable
(`MODELSERVE_MODEL_REPOSITORY`); the CLI wins over the environment.
"""

import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

CommaList = Annotated[list[str], NoDecode]


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
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"
    workers: int = Field(1, ge=1, description="server processes")

    providers: CommaList = Field(
        ["CUDAExecutionProvider", "CPUExecutionProvider"],
        description="ONNX Runtime execution providers in fallback order (comma separated); "
        "a model's config.yaml may override",
    )
    intra_op_num_threads: int = Field(1, ge=0, description="threads per ONNX Runtime session")
    inference_threads: int = Field(
        default_factory=_default_threads, ge=1, description="worker threads running sessions"
    )

    max_request_bytes: int = Field(64 * 2**20, ge=1024, description="largest request body")
    max_tensor_elements: int = Field(
        16 * 2**20, ge=1, description="largest element count of one tensor in a request"
    )
    max_json_depth: int = Field(32, ge=2, description="deepest JSON nesting accepted")

    @field_validator("providers", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    def to_env(self) -> dict[str, str]:
        """The settings as MODELSERVE_* variables, for worker processes started by uvicorn."""
        env = {}
        for name, value in self.model_dump().items():
            if isinstance(value, list):
                value = ",".join(value)
            env[f"MODELSERVE_{name.upper()}"] = str(value)
        return env
