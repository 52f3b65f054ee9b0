"""Every trained model in models/ over gRPC: the same bytes as HTTP's binary answer."""

import numpy as np
import pytest
import tritonclient.grpc as tg
import tritonclient.http as th

from tests.tasks.test_trained import CLASSIFIERS, GENERATORS, need, url  # noqa: F401  (url: the fixture)

GENERATION = {"num_samples": (np.array([3], np.int32), "INT32"), "seed": (np.array([11], np.int64), "INT64")}


def both(url, model: str, inputs: dict) -> tuple:  # noqa: F811
    """(gRPC result, HTTP result) of the same request."""
    grpc_client, http_client = tg.InferenceServerClient(url.grpc), th.InferenceServerClient(url.removeprefix("http://"))
    try:
        grpc_inputs, http_inputs = [], []
        for name, (array, datatype) in inputs.items():
            grpc_inputs.append(tg.InferInput(name, list(array.shape), datatype))
            grpc_inputs[-1].set_data_from_numpy(array)
            http_inputs.append(th.InferInput(name, list(array.shape), datatype))
            http_inputs[-1].set_data_from_numpy(array, binary_data=True)
        outputs = [o.name for o in grpc_client.get_model_metadata(model).outputs]
        via_http = http_client.infer(model, http_inputs, outputs=[th.InferRequestedOutput(o, binary_data=True) for o in outputs])
        return grpc_client.infer(model, grpc_inputs), via_http, outputs
    finally:
        grpc_client.close()
        http_client.close()


@pytest.mark.parametrize("model", [*CLASSIFIERS, "diabetes-regressor"])
def test_predictive_models_answer_as_over_http(url, model):  # noqa: F811
    need(model)
    spec = tg.InferenceServerClient(url.grpc).get_model_metadata(model).inputs[0]
    x = np.random.default_rng(0).uniform(-1, 1, (5, *[int(d) for d in spec.shape[1:]])).astype(np.float32)
    via_grpc, via_http, outputs = both(url, model, {spec.name: (x, spec.datatype)})
    for name in outputs:
        assert via_grpc.as_numpy(name).tobytes() == via_http.as_numpy(name).tobytes()


@pytest.mark.parametrize("model", GENERATORS)
def test_generators_answer_as_over_http(url, model):  # noqa: F811
    need(model)
    via_grpc, via_http, outputs = both(url, model, GENERATION)
    assert via_grpc.as_numpy("samples").shape[0] == 3
    for name in outputs:
        assert via_grpc.as_numpy(name).tobytes() == via_http.as_numpy(name).tobytes()
