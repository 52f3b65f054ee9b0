"""VAE: latent mean and log-variance (:predict), reconstructions, samples and interpolations."""

from typing import Any, Literal

import numpy as np
from pydantic import Field

from service.errors import InvalidInput
from service.imaging import b64, png
from service.runtime import TensorSpec
from service.tasks import positional
from service.tasks.generative import LatentModel, data_spec, latent_size
from service.tasks.instances import parse_instances
from service.tasks.params import LatentParams, PredictParams, validate
from service.tasks.units import Units


class VaeParams(LatentParams):
    interpolate: list[Any] | None = Field(
        None, min_length=2, max_length=2,
        description="two instances (arrays or {\"image_b64\": ...}): decode num_samples points "
        "on the line between their latent means, both ends included",
    )


class ReconstructParams(PredictParams):
    format: Literal["array", "png"] = "array"


class VaeModel(LatentModel):
    Params = StreamParams = VaeParams

    def __init__(self, name, version, config, graphs):
        super().__init__(name, version, config, graphs)
        self.encoder, self.decoder = graphs["encoder"], graphs["decoder"]
        positional.check(self.encoder, "encoder", inputs=1, outputs=2)
        positional.check(self.decoder, "decoder", inputs=1, outputs=1)
        self.units = Units(data_spec(config, self.encoder.inputs[0], "encoder input x"))
        self.latent_size = latent_size(config.latent_dim, self.decoder.inputs[0], "decoder input z")

    @property
    def task_inputs(self) -> tuple[TensorSpec, ...]:
        return TensorSpec("temperature", "FP32", (1,)), TensorSpec("interpolate", "FP32", (2, *self.units.shape))

    async def encode(self, raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Raw instances (N, *shape) -> latent mean and log-variance (N, latent_size)."""
        mean, log_var = await positional.run(self.encoder, self.units.to_network(raw))
        return mean.reshape(len(raw), -1), log_var.reshape(len(raw), -1)

    async def decode(self, z: np.ndarray) -> np.ndarray:
        x = (await positional.run(self.decoder, z.astype(np.float32)))[0]  # (B, *shape) network units
        return self.units.to_raw(x.reshape(len(z), *self.units.shape))

    async def predict(self, body: dict) -> list[dict]:
        params = validate(PredictParams, body, "vae")
        mean, log_var = await self.encode(parse_instances(params.instances, self.units))
        return [{"mean": m.tolist(), "log_var": v.tolist()} for m, v in zip(mean, log_var)]

    async def reconstruct(self, body: dict) -> list[dict]:
        """decoder(encoder mean): the model's deterministic reconstruction of each instance."""
        params = validate(ReconstructParams, body, "vae")
        if params.format == "png" and self.units.image is None:
            raise InvalidInput("format 'png' needs image samples, and this model's config has no data.image")
        mean, _ = await self.encode(parse_instances(params.instances, self.units))
        decoded = await self.decode(mean)
        if params.format == "png":
            size = (self.units.image.height, self.units.image.width)
            return [{"reconstruction": b64(png(self.units.ink(x).reshape(size)))} for x in decoded]
        return [{"reconstruction": x.tolist()} for x in decoded]

    def check_plan(self, plan) -> None:
        if plan.interpolate is not None:
            if "temperature" in plan.model_fields_set:
                raise InvalidInput("temperature does not apply to interpolate (its latents are the encodings)")
            parse_instances(plan.interpolate, self.units, what="interpolate")  # a bad instance is a 400 before any work

    async def latents(self, plan) -> np.ndarray:
        if plan.interpolate is None:
            return await super().latents(plan)
        ends, _ = await self.encode(parse_instances(plan.interpolate, self.units, what="interpolate"))  # (2, latent)
        weights = np.linspace(0.0, 1.0, plan.num_samples)[:, None]  # (N, 1)
        return ((1.0 - weights) * ends[0] + weights * ends[1]).astype(np.float32)

    def facts(self, plan) -> dict:
        if plan.interpolate is not None:
            return {"interpolate": True}
        return super().facts(plan)
