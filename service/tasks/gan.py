"""GAN: z ~ N(0, temperature^2 I) through the generator graph, samples back in raw units."""

import numpy as np

from service.runtime import TensorSpec
from service.tasks import positional
from service.tasks.generative import LatentModel, data_spec, latent_size
from service.tasks.params import LatentParams
from service.tasks.units import Units


class GanModel(LatentModel):
    Params = StreamParams = LatentParams
    task_inputs = (TensorSpec("temperature", "FP32", (1,)),)

    def __init__(self, name, version, config, graphs):
        super().__init__(name, version, config, graphs)
        self.generator = graphs["generator"]
        positional.check(self.generator, "generator", inputs=1, outputs=1)
        z_spec, x_spec = self.generator.inputs[0], self.generator.outputs[0]
        self.latent_size = latent_size(config.latent_dim, z_spec, "generator input z")
        self.units = Units(data_spec(config, x_spec, "generator output x"))

    async def decode(self, z: np.ndarray) -> np.ndarray:
        x = (await positional.run(self.generator, z))[0]  # (B, *shape) network units
        return self.units.to_raw(x.reshape(len(z), *self.units.shape))
