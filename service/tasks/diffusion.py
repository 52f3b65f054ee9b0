"""Diffusion: DDPM/DDIM sampling (service/sampling/diffusion.py). Each generation joins the
model's stepper (service/tasks/stepper.py), which takes the steps of all concurrent generations
with one denoiser execution and one vectorised update each."""

import functools
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import Field

from service.errors import InvalidInput
from service.runtime import TensorSpec
from service.sampling import cohort
from service.sampling import diffusion as sampling
from service.tasks import positional
from service.tasks.generative import Event, Generation, GenerativeModel, Progress, data_spec
from service.tasks.params import GenerateParams
from service.tasks.stepper import Stepper
from service.tasks.units import Units

Label = int | str


@dataclass
class Conditioning:
    """What the sampler conditions on: labels (N,) or None, the null label, the guidance scale.

    With `rows`, a label is a row of it (a text encoder's output for each prompt) and the row,
    not the index, is the denoiser's third input.
    """

    labels: np.ndarray | None
    null_label: int
    guidance: float
    rows: np.ndarray | None = None


class SamplerParams(GenerateParams):
    """What every diffusion sampler takes, conditioned on a label or on a prompt."""

    steps: int | None = Field(None, ge=1, description="denoiser calls (default: the config's default_steps)",
                              examples=[50])
    sampler: Literal["ddpm", "ddim"] = Field("ddpm", description="ddpm (Ho et al. 2020) or ddim (Song et al. 2021)")
    eta: float | None = Field(None, ge=0, le=1, description="ddim only: 0 deterministic (default), 1 ddpm-like noise")


class DiffusionParams(SamplerParams):
    label: Label | list[Label] | None = Field(
        None, description="class-conditional generation: a label's index or name, or one per sample; "
        "omitted: unconditional", examples=[3],
    )
    guidance: float | None = Field(
        None, ge=0, le=50, description="classifier-free guidance scale with a label (default 1: the "
        "conditional model alone; above 1 sharpens the class, 0 ignores it)",
    )


class DiffusionStreamParams(DiffusionParams):
    every: int = Field(1, ge=1, description="an event with the predicted clean samples every `every` steps")


class DiffusionModel(GenerativeModel):
    Params = DiffusionParams
    StreamParams = DiffusionStreamParams
    task_inputs = (
        TensorSpec("steps", "INT32", (1,)),
        TensorSpec("sampler", "BYTES", (1,)),
        TensorSpec("eta", "FP32", (1,)),
        TensorSpec("label", "INT32", (-1,)),
        TensorSpec("guidance", "FP32", (1,)),
    )

    def __init__(self, name, version, config, graphs):
        super().__init__(name, version, config, graphs)
        self.denoiser = graphs["denoiser"]
        positional.check(self.denoiser, "denoiser", inputs=3, outputs=1)
        if config.schedule is None:
            raise ValueError("a diffusion model needs schedule.betas in config.yaml")
        self.betas = np.asarray(config.schedule.betas, dtype=np.float64)
        timesteps = len(self.betas)
        self.max_steps = config.max_steps or timesteps
        self.default_steps = config.default_steps or self.max_steps
        if not self.default_steps <= self.max_steps <= timesteps:
            raise ValueError(f"need default_steps <= max_steps <= T = {timesteps} (the schedule's length)")
        self.labels = list(config.labels) if config.labels else None
        self.units = Units(data_spec(config, self.denoiser.inputs[0], "denoiser input x_t"))
        self.stepper = Stepper(self.denoiser, self.units.shape, self.units.network_range)
        # A schedule depends only on (steps, sampler, eta): computed once, not per request.
        self.schedule = functools.lru_cache(maxsize=256)(functools.partial(sampling.schedule, self.betas))

    def required_inputs(self) -> set[str]:
        # A class-conditional model trained without a null label cannot sample unconditionally.
        return {"label"} if self.labels and self.config.null_label is None else set()

    # ------------------------------------------------------------------ planning
    def check_plan(self, plan: DiffusionParams) -> None:
        self.check_sampler(plan)
        if plan.label is None:
            if plan.guidance is not None:
                raise InvalidInput("guidance needs a label to guide towards")
            if self.labels and self.config.null_label is None:
                raise InvalidInput("this model generates a class: give a label (it has no null_label)")
            return
        if self.labels is None:
            raise InvalidInput("this model is unconditional: its config has no labels, so it takes no label")
        if isinstance(plan.label, list) and len(plan.label) != plan.num_samples:
            raise InvalidInput(f"label has {len(plan.label)} entries; give one, or one per sample ({plan.num_samples})")
        self._label_indices(plan)  # names and ranges, before any work
        guidance = 1.0 if plan.guidance is None else plan.guidance
        if guidance != 1.0 and self.config.null_label is None:
            raise InvalidInput("guidance needs the unconditional model, and this config has no null_label")

    def check_sampler(self, plan: SamplerParams) -> None:
        if plan.steps is not None and plan.steps > self.max_steps:
            raise InvalidInput(f"steps {plan.steps} is over this model's max_steps of {self.max_steps}")
        if plan.eta is not None and plan.sampler != "ddim":
            raise InvalidInput("eta applies to the ddim sampler only")

    def _label_indices(self, plan: DiffusionParams) -> np.ndarray | None:
        if plan.label is None:
            return None
        asked = plan.label if isinstance(plan.label, list) else [plan.label] * plan.num_samples
        return np.array([self._index(label) for label in asked], dtype=np.int64)  # (N,)

    def _index(self, label: Label) -> int:
        if isinstance(label, str):
            if label not in self.labels:
                raise InvalidInput(f"label '{label}' is not one of the model's labels: {', '.join(self.labels)}")
            return self.labels.index(label)
        if not 0 <= label < len(self.labels):
            raise InvalidInput(f"label {label} is outside the classes 0..{len(self.labels) - 1}")
        return label

    # ------------------------------------------------------------------ sampling
    async def generate(self, plan: DiffusionParams) -> Generation:
        async for event in self._sample(plan, every=None):
            if isinstance(event, Generation):
                return event
        raise RuntimeError("the sampler ended without samples")

    async def stream(self, plan: DiffusionStreamParams) -> AsyncIterator[Event]:
        async for event in self._sample(plan, every=plan.every):
            yield event

    async def conditioning(self, plan: DiffusionParams) -> Conditioning:
        """The sampler's labels: class indices, each the denoiser's own label input."""
        labels = self._label_indices(plan)
        null_label = self.config.null_label if self.config.null_label is not None else 0
        guidance = 0.0 if labels is None else (1.0 if plan.guidance is None else plan.guidance)
        return Conditioning(labels, null_label, guidance)

    async def _sample(self, plan: SamplerParams, every: int | None) -> AsyncIterator[Event]:
        condition = await self.conditioning(plan)
        steps = plan.steps or self.default_steps
        member = cohort.member(
            self.schedule(steps, plan.sampler, plan.eta or 0.0), (plan.num_samples, *self.units.shape),
            labels=condition.labels, null_label=condition.null_label, guidance=condition.guidance,
            seed=plan.seed, rows=condition.rows,
        )
        async for event in self.stepper.run(member, every):
            if isinstance(event, tuple):  # the clean-sample prediction after `done` denoiser calls
                done, x0_pred = event
                yield Progress(done, steps, self.units.to_raw(x0_pred))
            else:
                yield Generation(self.units.to_raw(event), plan.seed, self._facts(plan, steps))

    def _facts(self, plan: DiffusionParams, steps: int) -> dict:
        facts = {"steps": steps, "sampler": plan.sampler}
        if plan.sampler == "ddim":
            facts["eta"] = plan.eta or 0.0
        if plan.label is not None:
            facts["labels"] = [self.labels[i] for i in self._label_indices(plan)]
            facts["guidance"] = 1.0 if plan.guidance is None else plan.guidance
        return facts
