"""Regression: the graph's V2 signature for tensors; value (and std, with a variance) for people."""

import numpy as np

from service.config import DataSpec
from service.errors import InvalidInput
from service.tasks import explain, positional
from service.tasks.generative import data_spec
from service.tasks.generic import GenericModel
from service.tasks.instances import parse_instances
from service.tasks.params import PredictParams, validate
from service.tasks.units import Units


class RegressionModel(GenericModel):
    def __init__(self, name, version, config, graphs):
        super().__init__(name, version, config, graphs)
        positional.check(self.runner, "model", inputs=1, outputs=1)
        self.features = list(config.features) if config.features else None
        if config.data is None and self.features:
            spec = DataSpec(shape=[len(self.features)])
        else:
            spec = data_spec(config, self.runner.inputs[0], "the model's input")
        self.units = Units(spec)
        if self.features and len(self.features) != self.units.size:
            raise ValueError(f"config.yaml lists {len(self.features)} features for inputs of shape {spec.shape}")

    async def predict(self, body: dict) -> list[dict]:
        params = validate(PredictParams, body, "regression")
        # Regression graphs take raw features: their normalisation is baked in.
        x = parse_instances(params.instances, self.units, self.features)  # (N, features)
        outputs = await positional.run(self.runner, self.units.to_network(x))
        mean = outputs[0].reshape(len(x)).astype(np.float64)  # (N,) raw target units
        if len(outputs) < 2:
            return [{"value": float(m)} for m in mean]
        std = np.sqrt(np.maximum(outputs[1].reshape(len(x)).astype(np.float64), 0.0))
        return [{"value": float(m), "std": float(s)} for m, s in zip(mean, std)]

    async def values(self, x: np.ndarray) -> np.ndarray:
        """The predicted mean (N,) of raw features x (N, features); :explain calls it."""
        outputs = await positional.run(self.runner, self.units.to_network(x))
        return outputs[0].reshape(len(x)).astype(np.float64)

    async def explain(self, body: dict) -> list[dict]:
        """Shapley values of each feature for the predicted value; they sum to value - baseline_value."""
        params = validate(explain.ExplainParams, body, "regression")
        if params.format == "png":
            raise InvalidInput("format 'png' draws image attributions; a regressor's are numbers")
        x = parse_instances(params.instances, self.units, self.features).astype(np.float64)  # (N, features)
        baseline = explain.baseline_of(params, self.config, self.units, None)
        values, order = await explain.evaluate(x, baseline, params, lambda rows: self.values(rows.astype(np.float32)))
        phi, f_base, f_x = explain.attributions(values[:, :, 0], order)
        names = self.features or [str(i) for i in range(self.units.size)]
        return [
            {"value": float(v), "baseline_value": float(b), "attributions": dict(zip(names, map(float, row))),
             **explain.method(params)}
            for row, b, v in zip(phi, f_base, f_x)
        ]
