"""Text-to-image: diffusion conditioned on a prompt. The text encoder runs once per request, on
its distinct prompts and the null caption; every step's denoiser call then goes through the
denoiser's runner as for any diffusion model, so concurrent prompts share executions."""

import numpy as np
from pydantic import Field

from service.errors import InvalidInput
from service.runtime import TensorSpec
from service.sampling.prompts import PromptError, Vocabulary, table
from service.tasks import positional
from service.tasks.diffusion import Conditioning, DiffusionModel, SamplerParams

Prompt = str | list[str] | None


class TextToImageParams(SamplerParams):
    prompt: Prompt = Field(
        None, description="what to draw, in the model's vocabulary; or one prompt per sample; "
        "omitted or empty: unconditional", examples=["a thick seven leaning right"],
    )
    text_input: Prompt = Field(None, description="Triton's name for prompt: give one or the other")
    guidance: float | None = Field(
        None, ge=0, le=50, description="classifier-free guidance scale (default: the config's "
        "default_guidance; 1: the conditional model alone, 0: ignore the prompt)",
    )


class TextToImageStreamParams(TextToImageParams):
    every: int = Field(1, ge=1, description="an event with the predicted clean samples every `every` steps")


class TextToImageModel(DiffusionModel):
    Params = TextToImageParams
    StreamParams = TextToImageStreamParams
    task_inputs = (
        TensorSpec("prompt", "BYTES", (-1,)),
        TensorSpec("text_input", "BYTES", (-1,)),
        TensorSpec("steps", "INT32", (1,)),
        TensorSpec("sampler", "BYTES", (1,)),
        TensorSpec("eta", "FP32", (1,)),
        TensorSpec("guidance", "FP32", (1,)),
    )

    def __init__(self, name, version, config, graphs):
        super().__init__(name, version, config, graphs)
        self.text_encoder = graphs["text_encoder"]
        positional.check(self.text_encoder, "text_encoder", inputs=1, outputs=1)
        shape = self.text_encoder.inputs[0].shape
        if len(shape) != 2 or shape[1] < 1:
            raise ValueError(f"text_encoder input must be (batch, max_words) with a fixed max_words, not {list(shape)}")
        if not isinstance(config.vocabulary, list):
            raise TypeError("a text-to-image model needs its vocabulary (one list of words) in config.yaml")
        self.vocabulary = Vocabulary(config.vocabulary, shape[1])
        self.default_guidance = 1.0 if config.default_guidance is None else config.default_guidance

    # ------------------------------------------------------------------ planning
    def check_plan(self, plan: TextToImageParams) -> None:
        self.check_sampler(plan)
        prompts = self._prompts(plan)
        if len(prompts) != plan.num_samples:
            raise InvalidInput(f"prompt has {len(prompts)} entries; give one, or one per sample ({plan.num_samples})")
        for prompt in dict.fromkeys(prompts):
            try:
                self.vocabulary.check(prompt)
            except PromptError as exc:
                raise InvalidInput(str(exc)) from None

    def _prompts(self, plan: TextToImageParams) -> list[str]:
        """One prompt per sample; prompt and text_input are one parameter under two names."""
        if plan.prompt is not None and plan.text_input is not None:
            raise InvalidInput("give prompt or text_input (its synonym), not both")
        given = plan.prompt if plan.prompt is not None else plan.text_input
        if given is None:
            return [""] * plan.num_samples
        return given if isinstance(given, list) else [given] * plan.num_samples

    def _guidance(self, plan: TextToImageParams) -> float:
        return self.default_guidance if plan.guidance is None else plan.guidance

    # ------------------------------------------------------------------ sampling
    async def conditioning(self, plan: TextToImageParams) -> Conditioning:
        """Encode the distinct prompts and the null caption in one call: (P + 1, D) rows."""
        distinct, rows = table(self._prompts(plan))
        encoded = (await positional.run(self.text_encoder, self.vocabulary.encode(distinct)))[0]
        guidance = 0.0 if rows is None else self._guidance(plan)
        return Conditioning(rows, len(distinct) - 1, guidance, np.asarray(encoded, dtype=np.float32))

    def _facts(self, plan: TextToImageParams, steps: int) -> dict:
        facts = {"steps": steps, "sampler": plan.sampler}
        if plan.sampler == "ddim":
            facts["eta"] = plan.eta or 0.0
        given = plan.prompt if plan.prompt is not None else plan.text_input
        facts["prompt"] = "" if given is None else given
        if table(self._prompts(plan))[1] is not None:  # some sample asks for something
            facts["guidance"] = self._guidance(plan)
        return facts
