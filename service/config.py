"""config.yaml of a model: a pydantic model, so a bad file is a clear load error for that model.

The model-level file holds operator policy (batching, providers, versions); a version's own file
holds what its training knows (task, labels, schedule). The version's keys override the model's.
See docs/MODEL_REPOSITORY.md for the fields.
"""

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

Task = Literal["generic", "classification", "regression", "gan", "vae", "flow", "diffusion",
               "node-classification"]

# The graph roles each task needs in its version folder, with their default file names.
TASK_GRAPHS: dict[str, dict[str, str]] = {
    "generic": {"model": "model.onnx"},
    "classification": {"model": "model.onnx"},
    "regression": {"model": "model.onnx"},
    "gan": {"generator": "generator.onnx"},
    "vae": {"encoder": "encoder.onnx", "decoder": "decoder.onnx"},
    "flow": {"forward": "forward.onnx", "inverse": "inverse.onnx"},
    "diffusion": {"denoiser": "denoiser.onnx"},
    "node-classification": {"model": "model.onnx"},
}


class ConfigError(Exception):
    """config.yaml is missing a field, has a wrong one, or is not YAML."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ImageSpec(Strict):
    height: int = Field(gt=0, le=4096)
    width: int = Field(gt=0, le=4096)


class DataSpec(Strict):
    """The units of one sample: users speak raw units, the network its own."""

    shape: list[int] = Field(min_length=1)
    raw_range: tuple[float, float] | None = None
    network_range: tuple[float, float] | None = None
    image: ImageSpec | None = None

    @model_validator(mode="after")
    def _ranges_come_in_pairs(self) -> "DataSpec":
        if (self.raw_range is None) != (self.network_range is None):
            raise ValueError("raw_range and network_range must be given together")
        for name in ("raw_range", "network_range"):
            low_high = getattr(self, name)
            if low_high is not None and not low_high[0] < low_high[1]:
                raise ValueError(f"{name} must be [low, high] with low < high")
        if any(d <= 0 for d in self.shape):
            raise ValueError("shape dimensions must be positive")
        return self


class Schedule(Strict):
    betas: list[float] = Field(min_length=1)

    @model_validator(mode="after")
    def _betas_in_unit_interval(self) -> "Schedule":
        if not all(0.0 < b < 1.0 for b in self.betas):
            raise ValueError("every beta must lie in (0, 1)")
        return self


class VersionPolicy(Strict):
    """Triton's version policy: exactly one of latest, all, specific."""

    latest: int | None = Field(None, ge=1)
    all: dict[str, Any] | None = None
    specific: list[int] | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> "VersionPolicy":
        chosen = [k for k in ("latest", "all", "specific") if getattr(self, k) is not None]
        if len(chosen) != 1:
            raise ValueError("version_policy takes exactly one of latest, all, specific")
        if self.specific is not None and any(v < 1 for v in self.specific):
            raise ValueError("specific versions must be positive integers")
        return self

    def select(self, available: list[int]) -> list[int]:
        """The versions to load among those on disk, highest first."""
        ordered = sorted(available, reverse=True)
        if self.latest is not None:
            return ordered[: self.latest]
        if self.specific is not None:
            return [v for v in ordered if v in self.specific]
        return ordered


class ModelConfig(Strict):
    task: Task = "generic"
    description: str | None = None
    graphs: dict[str, str] | None = None

    providers: list[str] | None = None
    require_first_provider: bool = False
    version_policy: VersionPolicy = VersionPolicy(latest=1)

    # Batching: None takes the service's settings (off unless they turn it on).
    max_batch_size: int | None = Field(None, ge=0)
    max_queue_delay_ms: float | None = Field(None, ge=0)
    preferred_batch_sizes: list[Annotated[int, Field(gt=0)]] | None = None
    max_queue_size: int | None = Field(None, ge=1)

    labels: list[str] | None = None
    data: DataSpec | None = None
    features: list[str] | None = None
    latent_dim: int | None = Field(None, gt=0)
    max_samples: int = Field(64, gt=0)
    schedule: Schedule | None = None
    default_steps: int | None = Field(None, gt=0)
    max_steps: int | None = Field(None, gt=0)
    null_label: int | None = Field(None, ge=0)
    # node-classification: the largest graph one request may send.
    max_nodes: int = Field(10_000, gt=0)
    max_edges: int = Field(100_000, gt=0)

    @model_validator(mode="after")
    def _graph_roles_match_task(self) -> "ModelConfig":
        if self.graphs is not None:
            needed = set(TASK_GRAPHS[self.task])
            if self.task != "generic" and set(self.graphs) != needed:
                raise ValueError(f"task '{self.task}' needs graphs {sorted(needed)}")
            for role, file_name in self.graphs.items():
                if Path(file_name).name != file_name or not file_name.endswith(".onnx"):
                    raise ValueError(f"graph '{role}': '{file_name}' must be a plain .onnx file name")
        return self

    def graph_files(self) -> dict[str, str]:
        return dict(self.graphs) if self.graphs else dict(TASK_GRAPHS[self.task])


def read_yaml(path: Path) -> dict[str, Any]:
    """A config file's mapping; {} when the file does not exist."""
    try:
        if not path.is_file():
            return {}
        content = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:  # unreadable (its folder's permissions too), or removed as we read
        raise ConfigError(f"{path.parent.name}/{path.name} cannot be read: {exc.strerror or exc}") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path.name} is not valid YAML: {exc}") from None
    if content is None:
        return {}
    if not isinstance(content, dict):
        raise ConfigError(f"{path.name} must be a mapping of fields, not {type(content).__name__}")
    return content


def build_config(model_level: dict[str, Any], version_level: dict[str, Any]) -> ModelConfig:
    """Merge a version's fields over the model's and validate the result."""
    try:
        return ModelConfig.model_validate({**model_level, **version_level})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'config'}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"invalid config.yaml: {problems}") from None
