"""Classification: the graph's V2 signature for tensors; label, probabilities and top-k for people."""

import asyncio

import numpy as np
from pydantic import Field

from service import heatmap, imaging
from service.errors import InvalidInput
from service.runtime import TensorSpec
from service.tasks import explain, positional
from service.tasks.generative import data_spec
from service.tasks.generic import GenericModel
from service.tasks.guard import OutOfDistributionGuard
from service.tasks.instances import parse_instances
from service.tasks.params import PredictParams, validate
from service.tasks.units import Units


class ClassifyParams(PredictParams):
    top_k: int = Field(3, ge=1, description="how many of the likeliest labels to list")


class ExplainClassParams(explain.ExplainParams):
    target: str | None = Field(None, description="the label to explain (default: the predicted one)")


def class_labels(config, logits: TensorSpec, task: str) -> list[str]:
    """config.yaml's labels, one per logit of the graph's last axis (when that axis is fixed)."""
    if not config.labels:
        raise ValueError(f"a {task} model needs labels in config.yaml")
    classes = logits.shape[-1]
    if classes > 0 and classes != len(config.labels):
        raise ValueError(f"the graph gives {classes} logits but config.yaml lists {len(config.labels)} labels")
    return list(config.labels)


class ClassificationModel(GenericModel):
    def __init__(self, name, version, config, graphs):
        super().__init__(name, version, config, graphs)
        positional.check(self.runner, "model", inputs=1, outputs=1)
        self.labels = class_labels(config, self.runner.outputs[0], "classification")
        self.units = Units(data_spec(config, self.runner.inputs[0], "the model's input"))
        self.guard = OutOfDistributionGuard(config.guard, (name, str(version))) if config.guard else None

    async def predict(self, body: dict) -> list[dict]:
        params = validate(ClassifyParams, body, "classification")
        if params.top_k > len(self.labels):
            raise InvalidInput(f"top_k {params.top_k} is over the model's {len(self.labels)} labels")
        raw = parse_instances(params.instances, self.units)  # (N, *shape)
        if self.guard is None:
            probabilities = await self.probabilities(raw)
            return [self._prediction(row, params.top_k) for row in probabilities]
        # The guard's density and the classifier run side by side, each in its own batcher.
        probabilities, verdicts = await asyncio.gather(self.probabilities(raw), self.guard.verdicts(raw, self.peers))
        return [
            {**self._prediction(row, params.top_k), **verdict}
            if verdict["in_distribution"] or not self.guard.refuses
            else self.guard.refusal(verdict)
            for row, verdict in zip(probabilities, verdicts)
        ]

    async def probabilities(self, raw: np.ndarray) -> np.ndarray:
        """(N, classes) class probabilities of raw (N, *shape); :explain calls it too."""
        logits = (await positional.run(self.runner, self.units.to_network(raw)))[0].astype(np.float64)
        return _softmax(logits.reshape(len(raw), -1))

    async def explain(self, body: dict) -> list[dict]:
        """Shapley values of each input pixel for the predicted (or `target`) class's probability."""
        params = validate(ExplainClassParams, body, "classification")
        if params.target is not None and params.target not in self.labels:
            raise InvalidInput(f"target '{params.target}' is not one of the labels: {', '.join(self.labels)}")
        raw = parse_instances(params.instances, self.units)  # (N, *shape)
        x = raw.reshape(len(raw), -1).astype(np.float64)  # (N, D)
        baseline = explain.baseline_of(params, self.config, self.units, self._blank())
        values, order = await explain.evaluate(
            x, baseline, params, lambda rows: self.probabilities(rows.reshape(-1, *self.units.shape).astype(np.float32))
        )  # (N, K*D + 2, classes)
        answers = []
        for i in range(len(x)):
            c = self.labels.index(params.target) if params.target is not None else int(np.argmax(values[i, 1]))
            phi, f_base, f_x = explain.attributions(values[i: i + 1, :, c], order)
            answer = {"label": self.labels[c], "probability": float(f_x[0]), "baseline_probability": float(f_base[0]),
                      "attributions": phi[0].reshape(self.units.shape).tolist(), **explain.method(params)}
            if params.format == "png" and self.units.image is not None:
                image = self.units.image
                ink = self.units.ink(raw[i]).reshape(image.height, image.width)
                answer["heatmap_png"] = imaging.b64(heatmap.heatmap_png(ink, phi[0].reshape(image.height, image.width)))
            answers.append(answer)
        return answers

    def _blank(self) -> np.ndarray:
        """The default baseline: empty paper, the bottom of raw_range (zeros without one)."""
        low = self.units.raw_range[0] if self.units.raw_range else 0.0
        return np.full(self.units.size, low, np.float64)

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
