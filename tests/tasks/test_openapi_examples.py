"""Every request example in /docs works when sent as it is (on tiny models of the same shapes)."""

import httpx
import pytest

from tests.tasks import builders

# Example name -> the tiny model it is sent to. An example without an entry fails the test,
# so a new example cannot land untried.
TARGETS = {
    "/v1/models/{name}:predict": {
        "classification": "classifier", "classification_nested": "classifier",
        "classification_image": "classifier", "regression": "regressor", "regression_array": "regressor",
        "flow": "vae",  # a digit: the tiny flow is 2-D, the trained digits-flow takes it too
        "node_classification": "graph",
    },
    "/v1/models/{name}:reconstruct": {"array": "vae", "png": "vae"},
    "/v1/models/{name}:explain": {"classification": "classifier", "classification_png": "classifier",
                                  "regression": "regressor"},
    "/v2/models/{name}/generate": {
        "gan": "gan", "png": "gan", "temperature": "flow", "diffusion": "diffusion",
        "diffusion_label": "diffusion", "vae_interpolate": "vae", "text_to_image": "text2img",
    },
    "/v2/models/{name}/generate_stream": {"diffusion": "diffusion", "gan": "gan", "text_to_image": "text2img"},
}


@pytest.fixture(scope="module")
def url(tmp_path_factory, module_server):
    repo = builders.task_repository(tmp_path_factory.mktemp("repo"))
    builders.write(repo, "graph", {"task": "node-classification", "labels": ["a", "b", "c"]},
                   {"model.onnx": builders.node_classifier()})
    return module_server(repo)


def test_every_task_route_has_examples_and_each_works_as_sent(url):
    paths = httpx.get(f"{url}/openapi.json").json()["paths"]
    for path, targets in TARGETS.items():
        examples = paths[path]["post"]["requestBody"]["content"]["application/json"]["examples"]
        assert set(examples) == set(targets), path
        for name, example in examples.items():
            response = httpx.post(f"{url}{path.replace('{name}', targets[name])}", json=example["value"], timeout=60)
            assert response.status_code == 200, (path, name, response.text)


def test_every_task_route_documents_its_response_and_errors(url):
    paths = httpx.get(f"{url}/openapi.json").json()["paths"]
    for path in TARGETS:
        for versioned in (path, path.replace("{name}", "{name}/versions/{version}")):
            responses = paths[versioned]["post"]["responses"]
            assert {"200", "400", "404"} <= set(responses), versioned
            assert "application/json" in responses["200"]["content"] or "text/event-stream" in responses["200"]["content"]
