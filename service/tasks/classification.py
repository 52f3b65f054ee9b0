"""Classification: the graph's V2 signature for tensors; label, probabilities and top-k for people."""

import numpy as np
from pydantic import Field

from service.errors import InvalidInput
from service.tasks import positional
from service.tasks.generative import data_spec
from service.tasks.generic import GenericModel
from service.tasks.instances import parse_instances
from service.tasks.params import PredictParams, validate
from service.tasks.units import Units


class ClassifyParams(PredictParams):
    top_k: int = Field(3, ge=1, description="how many of the likeliest labels to list")


class ClassificationModel(GenericModel):
    def __init__(self, name, version, config, graphs):
        super().__init__(name, version, config, graphs)
        positional.check(self.runner, "model", inputs=1, outputs=1)
        if not config.labels:
            raise ValueError("a classification model needs labels in config.yaml")
        self.labels = list(config.labels)
        self.units = Units(data_spec(config, self.runner.inputs[0], "the model's input"))
        classes = self.runner.outputs[0].shape[-1]
        if classes > 0 and classes != len(self.labels):
            raise ValueError(f"the graph gives {classes} logits but config.yaml lists {len(self.labels)} labels")

    async def predict(self, body: dict) -> list[dict]:
        params = validate(ClassifyParams, body, "classification")
        if params.top_k > len(self.labels):
            raise InvalidInput(f"top_k {params.top_k} is over the model's {len(self.labels)} labels")
        x = self.units.to_network(parse_instances(params.instances, self.units))  # (N, *shape)
        logits = (await positional.run(self.runner, x))[0].astype(np.float64)  # (N, classes)
        probabilities = _softmax(logits.reshape(len(x), -1))
        return [self._prediction(row, params.top_k) for row in probabilities]

    def _prediction(self, p: np.ndarray, top_k: int) -> dict:
        order = np.argsort(-p, kind="stable")
        best = int(order[0])
        return {
            "label": self.labels[best],
            "probability": float(p[best]),
            "probabilities": {label: float(v) for label, v in zip(self.labels, p)},
            "top_k": [{"label": self.labels[i], "probability": float(p[i])} for i in order[:top_k]],
        }


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)
