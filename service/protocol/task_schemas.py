"""Pydantic shapes of the KServe V1 task endpoints, for /docs. Each task validates its own parameters
(service/tasks/*); the examples here are sent as they are by tests/tasks/test_openapi_examples.py;
DIGIT and its kin are shared with generate_schemas.py."""

from typing import Any

import numpy as np
from pydantic import BaseModel, Field

from service.imaging import b64, png
from service.protocol.v2_schemas import Error

# scikit-learn's digits[3], a 3: 64 pixel values 0..16, row by row.
DIGIT = [0, 0, 7, 15, 13, 1, 0, 0, 0, 8, 13, 6, 15, 4, 0, 0, 0, 2, 1, 13, 13, 0, 0, 0, 0, 0, 2, 15, 11, 1, 0, 0,
         0, 0, 0, 1, 12, 12, 1, 0, 0, 0, 0, 0, 1, 10, 8, 0, 0, 0, 8, 4, 5, 14, 9, 0, 0, 0, 7, 13, 13, 9, 0, 0]
DIGIT_PNG_B64 = b64(png(np.array(DIGIT, dtype=np.float64).reshape(8, 8) / 16.0))
# scikit-learn's diabetes[0] in raw units (load_diabetes(scaled=False)).
PATIENT = {"age": 59, "sex": 2, "bmi": 32.1, "bp": 101, "s1": 157, "s2": 93.2, "s3": 38, "s4": 4, "s5": 4.8598, "s6": 87}

PREDICT_EXAMPLES = {
    "classification": {"summary": "classifier: a digit as 64 pixel values", "value": {"instances": [DIGIT], "top_k": 3}},
    "classification_nested": {
        "summary": "classifier: a digit as 8x8 rows",
        "value": {"instances": [[DIGIT[r * 8:(r + 1) * 8] for r in range(8)]], "top_k": 1},
    },
    "classification_image": {"summary": "classifier: a PNG in base64", "value": {"instances": [{"image_b64": DIGIT_PNG_B64}]}},
    "regression": {"summary": "regressor: named features", "value": {"instances": [PATIENT]}},
    "regression_array": {"summary": "regressor: features in order", "value": {"instances": [list(PATIENT.values())]}},
    "flow": {"summary": "flow or vae: a digit's log-density or latent code", "value": {"instances": [DIGIT]}},
    "node_classification": {
        "summary": "node classifier: a graph, its nodes' features and its edges (pairs, undirected)",
        "value": {"instances": [{"nodes": [[0.5, -0.5], [1.0, 0.0], [0.0, 1.0]], "edges": [[0, 1], [1, 2]]}]},
    },
}
EXPLAIN_EXAMPLES = {
    "classification": {"summary": "classifier: which pixels made the predicted label", "value": {"instances": [DIGIT]}},
    "classification_png": {
        "summary": "classifier: a heat map for label 8",
        "value": {"instances": [DIGIT], "target": "8", "format": "png", "orders": 8},
    },
    "regression": {
        "summary": "regressor: each feature's share of value - baseline_value",
        "value": {"instances": [PATIENT], "baseline": [48.7, 1.5, 26.2, 94.5, 188.3, 114.8, 49.9, 4.0, 4.6, 91.0]},
    },
}
RECONSTRUCT_EXAMPLES = {
    "array": {"summary": "a digit, reconstructed as an array", "value": {"instances": [DIGIT]}},
    "png": {"summary": "a digit, reconstructed as a PNG", "value": {"instances": [DIGIT], "format": "png"}},
}
class TopK(BaseModel):
    label: str
    probability: float


class ClassPrediction(BaseModel):
    label: str = Field(examples=["3"])
    probability: float
    probabilities: dict[str, float] = Field(description="label -> probability")
    top_k: list[TopK]
    # A model whose config.yaml names a guard (docs/MODELS.md) adds these; with `action: refuse`
    # an instance found outside has {"error", ...these} instead of a label.
    in_distribution: bool | None = Field(None, description="the guard's verdict")
    log_density: float | None = Field(None, description="log p(x) under the guard's density model")
    percentile: float | None = Field(None, description="share of validation data less likely (%)")


class RegressionPrediction(BaseModel):
    value: float
    std: float | None = Field(None, description="where the model predicts a variance")


class FlowPrediction(BaseModel):
    log_density: float = Field(description="log p(x) with x in the raw units sent (nats)")
    bits_per_dim: float = Field(description="-log_density / (D ln 2)")


class LatentPrediction(BaseModel):
    mean: list[float]
    log_var: list[float]


class NodePrediction(BaseModel):
    label: str
    probability: float
    probabilities: dict[str, float] = Field(description="label -> probability")


class GraphPrediction(BaseModel):
    nodes: list[NodePrediction] = Field(description="one per node, in the order sent")
    oversmoothing: dict[str, float] | None = Field(
        None, description="where the graph outputs node embeddings: their mean pairwise cosine_similarity "
        "and relative dirichlet_energy")


class PredictResponse(BaseModel):
    predictions: list[ClassPrediction | RegressionPrediction | FlowPrediction | LatentPrediction | GraphPrediction]


class Explanation(BaseModel):
    attributions: Any = Field(description="Shapley values in the input's shape, or {feature: value}")
    label: str | None = Field(None, description="classifier: the explained label")
    probability: float | None = Field(None, description="classifier: its probability at the input")
    baseline_probability: float | None = Field(None, description="classifier: ... at the baseline")
    value: float | None = Field(None, description="regressor: the prediction")
    baseline_value: float | None = Field(None, description="regressor: the prediction at the baseline")
    heatmap_png: str | None = Field(None, description="format png: base64 PNG of the attributions")
    method: str
    orders: int
    seed: int


class ExplainResponse(BaseModel):
    explanations: list[Explanation]


class Reconstruction(BaseModel):
    reconstruction: Any = Field(description="raw units in the sample's shape, or a base64 PNG")


class ReconstructResponse(BaseModel):
    predictions: list[Reconstruction]


def request_body(examples: dict, schemas: list[type[BaseModel]], multipart: bool = False) -> dict:
    """A hand-declared request body: the routes read JSON themselves (size limit, depth limit)."""
    schema = {"oneOf": [s.model_json_schema() for s in schemas]} if len(schemas) > 1 else schemas[0].model_json_schema()
    content = {"application/json": {"schema": schema, "examples": examples}}
    if multipart:
        content["multipart/form-data"] = {
            "schema": {
                "type": "object",
                "properties": {
                    "file": {"type": "string", "format": "binary", "description": "a PNG or JPEG; repeat for more"},
                    "top_k": {"type": "integer"},
                },
                "required": ["file"],
            }
        }
    return {"requestBody": {"required": True, "content": content}}


class _PredictBody(BaseModel):
    instances: list[Any] = Field(min_length=1)
    top_k: int | None = Field(None, description="classification: how many labels to list (default 3)")
    directed: bool | None = Field(None, description="node classification: each edge [a, b] one message from "
                                  "a to b (default false: an edge both ways)")


class _ReconstructBody(BaseModel):
    instances: list[Any] = Field(min_length=1)
    format: str = Field("array", description="array or png")


class _ExplainBody(BaseModel):
    instances: list[Any] = Field(min_length=1)
    target: str | None = Field(None, description="classification: the label to explain (default: predicted)")
    orders: int = Field(16, description="random feature orders averaged (Shapley value sampling)")
    seed: int = Field(0, description="seed of the orders")
    baseline: list[float] | None = Field(None, description="raw input meaning 'no information'")
    format: str = Field("array", description="array or png (classifier: adds a heat map)")


PREDICT_BODY = request_body(PREDICT_EXAMPLES, [_PredictBody], multipart=True)
EXPLAIN_BODY = request_body(EXPLAIN_EXAMPLES, [_ExplainBody])
RECONSTRUCT_BODY = request_body(RECONSTRUCT_EXAMPLES, [_ReconstructBody])

ERRORS = {
    400: {"model": Error, "description": "a bad parameter, instance or image, or a model of another task"},
    404: {"model": Error, "description": "unknown model or version"},
    503: {"model": Error, "description": "model not ready, or overloaded"},
}
