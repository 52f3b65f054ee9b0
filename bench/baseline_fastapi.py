"""The baseline a user would write: FastAPI + pydantic + ONNX Runtime, one V2-shaped route.

Run: python bench/baseline_fastapi.py MODEL.onnx PORT [PROVIDER]
"""

import sys

import numpy as np
import onnxruntime as ort
import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel


class Tensor(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    data: list[float]


class InferRequest(BaseModel):
    inputs: list[Tensor]


def build(model_path: str, provider: str = "CPUExecutionProvider") -> FastAPI:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(model_path, options, providers=[provider])
    app = FastAPI()

    @app.post("/v2/models/mlp/infer")
    def infer(request: InferRequest) -> dict:
        tensor = request.inputs[0]
        x = np.asarray(tensor.data, dtype=np.float32).reshape(tensor.shape)
        (logits,) = session.run(None, {"input": x})
        return {"model_name": "mlp", "outputs": [
            {"name": "logits", "datatype": "FP32", "shape": list(logits.shape), "data": logits.reshape(-1).tolist()}
        ]}

    return app


if __name__ == "__main__":
    uvicorn.run(build(*sys.argv[1:2], *sys.argv[3:4]), host="127.0.0.1", port=int(sys.argv[2]), log_level="warning", access_log=False)
