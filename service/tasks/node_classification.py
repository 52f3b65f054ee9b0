"""Node classification: a graph in, a label per node out.

The graph takes node features x (N, F) FP32 and edge_index (2, E) INT64 and gives logits (N, C),
and optionally the last layer's node embeddings (N, H) as a second output. V2 infer takes the two
tensors; V1 :predict takes {"instances": [{"nodes": [[...], ...], "edges": [[0, 1], ...]}]} and
answers each node's label and probabilities, with how oversmoothed the embeddings are.
"""

import asyncio

import numpy as np
from pydantic import Field

from service.graph_join import GraphJoiner
from service.tasks import graph_input, positional
from service.tasks.classification import class_labels
from service.tasks.generic import GenericModel
from service.tasks.params import Params, validate


class GraphParams(Params):
    instances: list[dict] = Field(min_length=1, description='graphs: {"nodes": [[feature, ...], ...], '
                                  '"edges": [[from, to], ...]}')
    directed: bool = Field(False, description="false: each [a, b] is an edge both ways; true: a message from a to b")


class NodeClassificationModel(GenericModel):
    def __init__(self, name, version, config, graphs):
        super().__init__(name, version, config, graphs)
        positional.check(self.runner, "model", inputs=2, outputs=1)
        self.labels = class_labels(config, self.outputs[0], "node-classification")
        x, edges = self.inputs[:2]
        if x.datatype != "FP32" or len(x.shape) != 2 or x.shape[1] < 1:
            raise ValueError(f"input '{x.name}' must be FP32 [-1, F] node features, not {x.datatype} {list(x.shape)}")
        if edges.datatype != "INT64" or list(edges.shape) != [2, -1]:
            raise ValueError(f"input '{edges.name}' must be INT64 [2, -1] edge_index, not {edges.datatype} {list(edges.shape)}")
        self.features = x.shape[1]
        self.limits = (config.max_nodes, config.max_edges)
        # Concurrent graphs run as one disjoint graph, up to max_batch_size graphs and a request's
        # node and edge limits (bench/graphs.py measures it); max_batch_size 0 or unset: alone.
        self.joiner = GraphJoiner(self._run, config.max_batch_size or 1, config.max_nodes, config.max_edges)

    async def _run(self, x: np.ndarray, edge_index: np.ndarray) -> dict[str, np.ndarray]:
        outputs = await positional.run(self.runner, x, edge_index)
        return {spec.name: out for spec, out in zip(self.outputs, outputs)}

    def check_inputs(self, inputs: dict[str, np.ndarray], datatypes: dict[str, str]) -> None:
        super().check_inputs(inputs, datatypes)  # names, datatypes, shapes
        x, edges = self.inputs[:2]
        graph_input.check(inputs[x.name], inputs[edges.name], *self.limits)

    def items(self, inputs: dict[str, np.ndarray]) -> int:
        return 1  # one graph per request, whatever its size

    async def infer(self, inputs: dict[str, np.ndarray], output_names: list[str] | None) -> dict[str, np.ndarray]:
        x, edges = self.inputs[:2]
        outputs = await self.joiner.submit(inputs[x.name], inputs[edges.name])
        return {n: outputs[n] for n in output_names} if output_names else outputs

    async def predict(self, body: dict) -> list[dict]:
        params = validate(GraphParams, body, "node-classification")
        parsed = [graph_input.parse(item, self.features, params.directed, self.limits, f"instances[{i}]")
                  for i, item in enumerate(params.instances)]
        results = await asyncio.gather(*(self.joiner.submit(x, e) for x, e in parsed))
        return [self._prediction(out, e) for out, (_, e) in zip(results, parsed)]

    def _prediction(self, outputs: dict[str, np.ndarray], edge_index: np.ndarray) -> dict:
        specs = self.outputs
        logits = outputs[specs[0].name].astype(np.float64)  # (N, C)
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        best = p.argmax(axis=1)
        nodes = [{"label": self.labels[b], "probability": float(row[b]),
                  "probabilities": {label: float(v) for label, v in zip(self.labels, row)}}
                 for b, row in zip(best.tolist(), p)]
        prediction = {"nodes": nodes}
        if len(specs) > 1 and len(outputs[specs[1].name].shape) == 2:
            prediction["oversmoothing"] = oversmoothing(outputs[specs[1].name], edge_index)
        return prediction


def oversmoothing(embeddings: np.ndarray, edge_index: np.ndarray) -> dict:
    """How alike the last layer's node vectors h (N, H) are: 1 and 0 when they all collapse.

    cosine_similarity: the mean over node pairs i != j of cos(h_i, h_j); dirichlet_energy:
    sum over edges (i, j) of |h_i / sqrt(1 + d_i) - h_j / sqrt(1 + d_j)|^2 / 2, divided by
    sum_i |h_i|^2 (Cai & Wang 2020; relative, so the vectors' scale drops out). The same
    formulas as training/gcn.py's measures(), which the card reports.
    """
    h = embeddings.astype(np.float64)
    n = len(h)
    norms = np.linalg.norm(h, axis=1)
    total = (h / np.maximum(norms, 1e-12)[:, None]).sum(0)
    cosine = float((total @ total - (norms > 1e-12).sum()) / (n * (n - 1))) if n > 1 else 1.0
    src, dst = edge_index
    scaled = h / np.sqrt(np.bincount(dst, minlength=n) + 1.0)[:, None]
    energy = 0.5 * float(((scaled[src] - scaled[dst]) ** 2).sum())
    power = float((h**2).sum())
    return {"cosine_similarity": cosine, "dirichlet_energy": energy / power if power > 0 else 0.0}
