"""What GAN, VAE, flow and diffusion share: a generation plan, its V2 signature, its events.

A generation is planned (parameters validated against the config, a seed drawn) before anything
runs, so a bad request fails with 400 before a stream has started. Samples leave in raw units.
"""

import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace

import numpy as np

from service.config import DataSpec, ModelConfig
from service.errors import InvalidInput
from service.runtime import TensorSpec
from service.signature import check_inputs
from service.tasks.base import ServedModel
from service.tasks.params import GenerateParams, validate
from service.tasks.units import Units


@dataclass
class Generation:
    """The result of a generation; the last event of its stream."""

    samples: np.ndarray  # (N, *shape) raw units
    seed: int | None
    facts: dict = field(default_factory=dict)  # what the task echoes back (labels, steps...)
    final = True

    def tensors(self) -> dict[str, np.ndarray]:
        """The event as V2 outputs, for tensor transports (gRPC's ModelStreamInfer)."""
        return {"samples": self.samples, "seed": np.array([self.seed], dtype=np.int64)}

    def parameters(self) -> dict:
        return {"event": "done"}


@dataclass
class Progress:
    """Diffusion: the prediction of the clean samples after `step` of `steps` denoiser calls."""

    step: int
    steps: int
    samples: np.ndarray  # (N, *shape) raw units
    final = False

    def tensors(self) -> dict[str, np.ndarray]:
        return {"samples": self.samples}

    def parameters(self) -> dict:
        return {"event": "progress", "step": self.step, "steps": self.steps}


@dataclass
class Sample:
    """One sample of a stream, as soon as it exists."""

    index: int
    sample: np.ndarray  # (*shape) raw units
    final = False

    def tensors(self) -> dict[str, np.ndarray]:
        return {"samples": self.sample[None]}

    def parameters(self) -> dict:
        return {"event": "sample", "index": self.index}


Event = Generation | Progress | Sample

# The V2 signature of every generative model; each task adds its own parameters.
COMMON_INPUTS = [TensorSpec("num_samples", "INT32", (1,)), TensorSpec("seed", "INT64", (1,))]


def data_spec(config: ModelConfig, graph_spec: TensorSpec, what: str) -> DataSpec:
    """config.data, or the shape a graph states for itself when the config has none."""
    if config.data is not None:
        return config.data
    dims = graph_spec.shape[1:]
    if not dims or any(d < 1 for d in dims):
        raise ValueError(f"{what} has no fixed sample shape {list(graph_spec.shape)}: give data.shape in config.yaml")
    return DataSpec(shape=list(dims))


def rng(seed: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(seed))


class GenerativeModel(ServedModel):
    """A model whose V2 signature is its generation: parameters in, `samples` out."""

    Params: type[GenerateParams] = GenerateParams
    StreamParams: type[GenerateParams] = GenerateParams
    task_inputs: tuple[TensorSpec, ...] = ()  # the task's parameters as V2 tensors
    units: Units  # set by each task's __init__ once it knows its sample shape

    # ------------------------------------------------------------------ planning
    def plan(self, params: dict, stream: bool = False) -> GenerateParams:
        """The validated parameters, with a seed drawn when none was given."""
        plan = validate(self.StreamParams if stream else self.Params, params, self.config.task)
        if plan.num_samples > self.config.max_samples:
            raise InvalidInput(
                f"num_samples {plan.num_samples} is over this model's max_samples of {self.config.max_samples}"
            )
        if plan.format == "png" and self.units.image is None:
            raise InvalidInput("format 'png' needs image samples, and this model's config has no data.image")
        if plan.seed is None:
            plan.seed = secrets.randbelow(2**63)
        self.check_plan(plan)
        return plan

    def check_plan(self, plan: GenerateParams) -> None:
        """Task checks that need the config (labels, steps...)."""

    async def generate(self, plan: GenerateParams) -> Generation:
        raise NotImplementedError

    async def stream(self, plan: GenerateParams) -> AsyncIterator[Event]:
        raise NotImplementedError
        yield  # pragma: no cover  (makes this an async generator)

    # ------------------------------------------------------------------ V2 signature
    @property
    def inputs(self) -> list[TensorSpec]:
        # Each generation input has a default, so each is optional, save what the config makes
        # necessary: a client that fills only the required inputs (as generic V2 tools do) works.
        required = self.required_inputs()
        return [replace(s, optional=s.name not in required) for s in (*COMMON_INPUTS, *self.task_inputs)]

    def required_inputs(self) -> set[str]:
        """The inputs this model cannot generate without."""
        return set()

    @property
    def outputs(self) -> list[TensorSpec]:
        return [TensorSpec("samples", "FP32", (-1, *self.units.shape)), TensorSpec("seed", "INT64", (1,))]

    def check_inputs(self, inputs: dict[str, np.ndarray], datatypes: dict[str, str]) -> None:
        # Every generation input is optional (absent: its default), so check only those sent.
        known = [spec.name for spec in self.inputs]
        for name in inputs:
            if name not in known:
                raise InvalidInput(f"unknown input '{name}'; the model's inputs are: {', '.join(known)}")
        check_inputs([s for s in self.inputs if s.name in inputs], inputs, datatypes)

    streams = True

    def params_from_tensors(self, inputs: dict[str, np.ndarray]) -> dict:
        return {name: _param(name, array) for name, array in inputs.items()}

    async def infer(self, inputs: dict[str, np.ndarray], output_names: list[str] | None) -> dict[str, np.ndarray]:
        generation = await self.generate(self.plan(self.params_from_tensors(inputs)))
        return {"samples": generation.samples, "seed": np.array([generation.seed], dtype=np.int64)}

    def items(self, inputs: dict[str, np.ndarray]) -> int:
        return int(inputs["num_samples"].reshape(-1)[0]) if "num_samples" in inputs else 1


def _param(name: str, array: np.ndarray):
    """A V2 tensor as the JSON value /generate would take: a scalar for [1], else a list."""
    if array.dtype == object:
        values = [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in array.reshape(-1)]
    else:
        values = array.tolist()
    if array.shape == (1,):
        return values[0]
    return values


class LatentModel(GenerativeModel):
    """GAN, VAE and flow: latents z ~ N(0, temperature^2 I) drawn up front, then decoded."""

    latent_size: int

    async def latents(self, plan) -> np.ndarray:
        """(N, latent_size) float32 from the plan's seed: the same for a stream and a batch."""
        z = rng(plan.seed).standard_normal((plan.num_samples, self.latent_size))
        return (plan.temperature * z).astype(np.float32)

    async def decode(self, z: np.ndarray) -> np.ndarray:
        """Latents (B, latent_size) -> samples (B, *shape) in raw units, one graph call."""
        raise NotImplementedError

    async def generate(self, plan) -> Generation:
        samples = await self.decode(await self.latents(plan))  # the whole batch in one graph call
        return Generation(samples, plan.seed, self.facts(plan))

    async def stream(self, plan) -> AsyncIterator[Event]:
        z = await self.latents(plan)
        samples = []
        for i in range(len(z)):  # one graph call per sample, so a client sees each one arrive
            sample = (await self.decode(z[i: i + 1]))[0]
            samples.append(sample)
            yield Sample(i, sample)
        yield Generation(np.stack(samples), plan.seed, self.facts(plan))

    def facts(self, plan) -> dict:
        return {"temperature": plan.temperature}



def latent_size(configured: int | None, graph_spec: TensorSpec, what: str) -> int:
    """config's latent_dim, checked against the graph's; the graph's when the config is silent."""
    stated = graph_spec.shape[1] if len(graph_spec.shape) == 2 and graph_spec.shape[1] > 0 else None
    if configured is not None and stated is not None and configured != stated:
        raise ValueError(f"latent_dim is {configured} but {what} has {stated} dimensions")
    if configured is None and stated is None:
        raise ValueError(f"{what} has no fixed size {list(graph_spec.shape)}: give latent_dim in config.yaml")
    return configured or stated
