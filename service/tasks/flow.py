"""Normalizing flow: exact log-density of instances (forward graph), samples (inverse graph)."""

import math

import numpy as np

from service.runtime import TensorSpec
from service.tasks import positional
from service.tasks.generative import LatentModel, data_spec, latent_size
from service.tasks.instances import parse_instances
from service.tasks.params import LatentParams, PredictParams, validate
from service.tasks.units import Units

_LOG_2PI = math.log(2.0 * math.pi)


class FlowModel(LatentModel):
    Params = StreamParams = LatentParams
    task_inputs = (TensorSpec("temperature", "FP32", (1,)),)

    def __init__(self, name, version, config, graphs):
        super().__init__(name, version, config, graphs)
        self.forward, self.inverse = graphs["forward"], graphs["inverse"]
        positional.check(self.forward, "forward", inputs=1, outputs=2)
        positional.check(self.inverse, "inverse", inputs=1, outputs=1)
        self.units = Units(data_spec(config, self.forward.inputs[0], "forward input x"))
        # A flow keeps dimensions: z has as many as a sample (D = prod(data.shape)).
        self.latent_size = latent_size(config.latent_dim or self.units.size, self.inverse.inputs[0], "inverse input z")

    async def decode(self, z: np.ndarray) -> np.ndarray:
        x = (await positional.run(self.inverse, z))[0]  # (B, *shape) network units
        return self.units.to_raw(x.reshape(len(z), *self.units.shape))

    async def predict(self, body: dict) -> list[dict]:
        """log p(x) with x in raw units, and bits per dimension, for each instance."""
        params = validate(PredictParams, body, "flow")
        log_p = await self.log_density(parse_instances(params.instances, self.units))
        bits = -log_p / (self.units.size * math.log(2.0))
        return [{"log_density": float(lp), "bits_per_dim": float(b)} for lp, b in zip(log_p, bits)]

    async def log_density(self, raw: np.ndarray) -> np.ndarray:
        """log p(x) (N,) in raw units of raw (N, *shape); a classifier's guard calls it too."""
        x = self.units.to_network(raw.reshape(len(raw), *self.units.shape))
        z, log_det = await positional.run(self.forward, x)
        z = z.reshape(len(x), -1).astype(np.float64)  # (N, D)
        # log p_net(x) = log N(z; 0, I) + log|det dz/dx|  (Dinh et al. 2017, eq. 3); the DataSpec's
        # linear map adds log|d network / d raw| to give the density of what the user sent.
        log_p = -0.5 * (z**2).sum(axis=1) - 0.5 * z.shape[1] * _LOG_2PI + log_det.reshape(len(x))
        return log_p + self.units.log_jacobian
