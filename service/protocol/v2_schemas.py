"""Pydantic shapes of the V2 protocol, for /docs. Tensor data itself is parsed by v2_codec."""

from typing import Any

from pydantic import BaseModel, Field


class Tensor(BaseModel):
    name: str
    shape: list[int]
    datatype: str = Field(description="BOOL, UINT8..64, INT8..64, FP16, FP32, FP64 or BYTES")
    parameters: dict[str, Any] | None = None
    data: list[Any] | None = Field(None, description="flat or nested, row-major")


class RequestOutput(BaseModel):
    name: str
    parameters: dict[str, Any] | None = Field(None, description='{"binary_data": true} for binary')


class InferenceRequest(BaseModel):
    id: str | None = None
    parameters: dict[str, Any] | None = None
    inputs: list[Tensor]
    outputs: list[RequestOutput] | None = None

    model_config = {
        "json_schema_extra": {
            "examples": [
                {
                    "id": "42",
                    "inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32", "data": [0.0] * 64}],
                }
            ]
        }
    }


class InferenceResponse(BaseModel):
    model_name: str
    model_version: str | None = None
    id: str | None = None
    parameters: dict[str, Any] | None = None
    outputs: list[Tensor]


class TensorMetadata(BaseModel):
    name: str
    datatype: str
    shape: list[int] = Field(description="-1 marks a dynamic dimension")
    parameters: dict[str, Any] | None = Field(
        None, description='{"optional": true} for an input a request may leave out; absent when required'
    )


class ModelMetadata(BaseModel):
    name: str
    versions: list[str]
    platform: str
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]
    parameters: dict[str, Any] | None = Field(None, description="task, and the execution provider in use")


class ServerMetadata(BaseModel):
    name: str
    version: str
    extensions: list[str]


class Live(BaseModel):
    live: bool


class Ready(BaseModel):
    ready: bool


class ModelReady(BaseModel):
    name: str
    ready: bool


class Error(BaseModel):
    error: str = Field(examples=["unknown model 'digits'"])


ERRORS = {
    400: {"model": Error, "description": "the request is malformed or does not fit the model"},
    404: {"model": Error, "description": "unknown model or version"},
    503: {"model": Error, "description": "model not ready, or overloaded"},
}


_REF = "#/components/schemas/{model}"

# The infer route reads its body itself (JSON or binary), so its schema is declared by hand;
# the models it refers to are added to the document's components by `extra_components`.
INFER_REQUEST_BODY = {
    "required": True,
    "content": {
        "application/json": {"schema": {"$ref": _REF.format(model="InferenceRequest")}},
        "application/octet-stream": {
            "schema": {"type": "string", "format": "binary"},
            "description": "binary tensor data extension: a JSON header of "
            "Inference-Header-Content-Length bytes, then the tensors' bytes",
        },
    },
}


def extra_components() -> dict:
    schema = InferenceRequest.model_json_schema(ref_template=_REF)
    components = schema.pop("$defs", {})
    components["InferenceRequest"] = schema
    return components
