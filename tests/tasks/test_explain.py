"""KServe V1 :explain on the tiny models of tests/tasks/builders.py, whose weights are known."""

import base64
import io

import httpx
import numpy as np
import pytest
from PIL import Image

from service.protocol.task_schemas import DIGIT, PATIENT
from tests.tasks import builders


@pytest.fixture(scope="module")
def url(tmp_path_factory, module_server):
    return module_server(builders.task_repository(tmp_path_factory.mktemp("repo")))


def explain(url, model, body) -> httpx.Response:
    return httpx.post(f"{url}/v1/models/{model}:explain", json=body, timeout=60)


def executions(url, model) -> float:
    text = httpx.get(f"{url}/metrics").text
    prefix = f'modelserve_inference_exec_count_total{{model="{model}"'
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(prefix))


def test_a_classifier_explains_its_label_with_pixels_that_add_up(url):
    before = executions(url, "classifier")
    response = explain(url, "classifier", {"instances": [DIGIT, [0] * 64], "orders": 8})
    assert response.status_code == 200, response.text
    (first, second) = response.json()["explanations"]
    assert executions(url, "classifier") == before + 1  # every path of both instances: one execution
    predicted = httpx.post(f"{url}/v1/models/classifier:predict", json={"instances": [DIGIT]}).json()["predictions"][0]
    assert first["label"] == predicted["label"]
    assert first["probability"] == pytest.approx(predicted["probability"], rel=1e-5)
    phi = np.array(first["attributions"])
    assert phi.shape == (1, 8, 8)
    # Efficiency: along every order the contributions telescope to f(x) - f(baseline).
    assert phi.sum() == pytest.approx(first["probability"] - first["baseline_probability"], abs=1e-5)
    assert np.array(second["attributions"]).sum() == pytest.approx(0.0, abs=1e-6)  # x is the baseline
    assert first["method"] == "shapley value sampling" and first["orders"] == 8


def test_the_same_request_gives_the_same_answer_and_a_target_is_explained(url):
    body = {"instances": [DIGIT], "target": "7", "seed": 3}
    a, b = (explain(url, "classifier", body).json()["explanations"][0] for _ in range(2))
    assert a == b and a["label"] == "7"
    assert explain(url, "classifier", {**body, "target": "x"}).status_code == 400


def test_png_is_a_heat_map_over_the_digit(url):
    (answer,) = explain(url, "classifier", {"instances": [DIGIT], "format": "png"}).json()["explanations"]
    image = Image.open(io.BytesIO(base64.b64decode(answer["heatmap_png"])))
    assert image.format == "PNG" and image.size == (256, 256) and image.mode == "RGB"
    assert "attributions" in answer


def test_a_linear_regressor_gets_its_exact_shapley_values(url):
    baseline = [1.0] * 10
    response = explain(url, "regressor", {"instances": [PATIENT], "baseline": baseline})
    assert response.status_code == 200, response.text
    (answer,) = response.json()["explanations"]
    x = np.array(list(PATIENT.values()))
    exact = builders.REGRESSOR_W[:, 0] * (x - 1.0)  # a linear model's Shapley values
    np.testing.assert_allclose(list(answer["attributions"].values()), exact, rtol=1e-4, atol=1e-4)
    assert list(answer["attributions"]) == builders.FEATURES
    assert sum(answer["attributions"].values()) == pytest.approx(answer["value"] - answer["baseline_value"], rel=1e-5)


@pytest.mark.parametrize("model, body, problem", [
    ("regressor", {"instances": [PATIENT]}, "no explanation baseline"),
    ("regressor", {"instances": [PATIENT], "baseline": [0, 1]}, "baseline must be 10"),
    ("regressor", {"instances": [PATIENT], "baseline": [0] * 10, "format": "png"}, "png"),
    ("classifier", {"instances": [DIGIT] * 64, "orders": 512}, "at most 65536"),
    ("classifier", {"instances": [DIGIT], "steps": 3}, "unknown parameter 'steps'"),
    ("vae", {"instances": [DIGIT]}, "no :explain endpoint"),
])
def test_bad_explain_requests_are_400s_that_say_why(url, model, body, problem):
    response = explain(url, model, body)
    assert response.status_code == 400 and problem in response.json()["error"], response.text
