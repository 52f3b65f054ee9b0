"""config.yaml of a model: a pydantic model, so a bad file is a clear load error for that model.

The model-level file holds operator policy (batching, providers, versions); a version's own file
holds what its training knows (task, labels, schedule). The version's keys override the model's.
See docs/MODEL_REPOSITORY.md for the fields.
"""

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

Task = Literal[
    "generic", "classification", "regression", "gan", "vae", "flow", "diffusion", "text-to-image", "translation",
    "node-classification",
]

# The graph roles each task needs in its version folder, with their default file names.
TASK_GRAPHS: dict[str, dict[str, str]] = {
    "generic": {"model": "model.onnx"},
    "classification": {"model": "model.onnx"},
    "regression": {"model": "model.onnx"},
    "gan": {"generator": "generator.onnx"},
    "vae": {"encoder": "encoder.onnx", "decoder": "decoder.onnx"},
    "flow": {"forward": "forward.onnx", "inverse": "inverse.onnx"},
    "diffusion": {"denoiser": "denoiser.onnx"},
    "text-to-image": {"text_encoder": "text_encoder.onnx", "denoiser": "denoiser.onnx"},
    "translation": {"encoder": "encoder.onnx", "decoder": "decoder.onnx"},
    "node-classification": {"model": "model.onnx"},
}
# Graphs a task uses when a version has them, and does without otherwise.
OPTIONAL_GRAPHS: dict[str, set[str]] = {"translation": {"decoder_cached", "cross_kv"}}  # key/value cache


class ConfigError(Exception):
    """config.yaml is missing a field, has a wrong one, or is not YAML."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ImagePrep(Strict):
    """How an upload becomes a sample like the training data's (docs/MODEL_REPOSITORY.md)."""

    work_size: int = Field(512, ge=8, le=4096)  # area-averaged down to this longer side first
    polarity: Literal["auto", "dark_ink", "light_ink"] = "auto"  # auto: paper is the median grey
    denoise: int = Field(3, ge=0, le=9)  # median filter (px) used to find the ink, 0: none
    ink_threshold: float = Field(0.25, gt=0, lt=1)  # share of the strongest ink that is ink
    crop_trim: float = Field(0.01, ge=0, lt=0.25)  # ink mass ignored at each edge (specks)
    margin: float = Field(0.0, ge=0, lt=0.5)  # share of the square's side left blank each side
    min_side: int = Field(8, ge=1)  # smaller uploads are refused
    min_contrast: float = Field(0.1, gt=0, lt=1)  # weaker ink (of the grey range) is no ink


class ImageSpec(Strict):
    height: int = Field(gt=0, le=4096)
    width: int = Field(gt=0, le=4096)
    prepare: ImagePrep | None = None  # None: the whole upload is resized (no crop)


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


class Vocabulary(Strict):
    """Sequence-to-sequence tokens: a token's index is its id in the graphs."""

    source: list[str] = Field(min_length=2)
    target: list[str] = Field(min_length=4)


class SpecialTokens(Strict):
    pad: int = Field(0, ge=0)  # in both vocabularies
    bos: int = Field(1, ge=0)  # target only
    eos: int = Field(2, ge=0)  # target only


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


class Guard(Strict):
    """An out-of-distribution guard: a density model of the same repository and a threshold on
    its log-density, calibrated by training (docs/MODELS.md); `action` is the operator's."""

    # Optional one by one: a model-level file may hold only the action; the task checks the merge.
    model: str | None = Field(None, min_length=1)
    version: int | None = Field(None, ge=1)  # None: the guard model's latest
    threshold: float | None = None  # log-density (raw units) under which an instance is outside
    false_positive_rate: float | None = Field(None, ge=0, le=1)  # on validation, for the card
    percentiles: list[float] | None = Field(None, min_length=2)  # validation log-densities, 0..100%
    action: Literal["flag", "refuse"] = "flag"


class ExplainSpec(Strict):
    """Defaults of :explain: the input that stands for "no information" (raw units)."""

    baseline: list[float] | None = None


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
    guard: Guard | None = None
    explain: ExplainSpec | None = None
    # A token's index is its id in the graphs. text-to-image: one list of words (holds <pad> and
    # <null>); translation: a source and a target list (service/tasks/translation.py).
    vocabulary: Annotated[list[str], Field(min_length=2)] | Vocabulary | None = None
    # text-to-image: the guidance a request gets when it gives none, prompts a playground suggests
    default_guidance: float | None = Field(None, ge=0)
    prompt_examples: list[str] | None = None
    # translation: special tokens and lengths
    special_tokens: SpecialTokens = SpecialTokens()
    max_input_tokens: int | None = Field(None, gt=0)
    max_output_tokens: int | None = Field(None, gt=0)
    max_beam_width: int = Field(8, gt=0)
    # node-classification: the largest graph one request may send.
    max_nodes: int = Field(10_000, gt=0)
    max_edges: int = Field(100_000, gt=0)

    @model_validator(mode="after")
    def _graph_roles_match_task(self) -> "ModelConfig":
        if self.graphs is not None:
            needed = set(TASK_GRAPHS[self.task])
            optional = OPTIONAL_GRAPHS.get(self.task, set())
            if self.task != "generic" and not needed <= set(self.graphs) <= needed | optional:
                extra = f" (and may have {sorted(optional)})" if optional else ""
                raise ValueError(f"task '{self.task}' needs graphs {sorted(needed)}{extra}")
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
        merged = {**model_level, **version_level}
        # The guard is calibrated per version, its action is the operator's: both levels merge.
        if isinstance(model_level.get("guard"), dict) and isinstance(version_level.get("guard"), dict):
            merged["guard"] = {**version_level["guard"], **model_level["guard"]}
        return ModelConfig.model_validate(merged)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'config'}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"invalid config.yaml: {problems}") from None
