"""The task endpoints on the trained models in models/, each test skipped when its model is absent.

The held-out digits come from the classifier's own card.json (its test split's indices), so a
digit the model learnt from never counts as a success.
"""

import io
import json
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.conftest import ROOT, linked_committed_models

MODELS = ROOT / "models"
CLASSIFIERS = ["digits-cnn", "digits-shallow", "digits-deep"]
GENERATORS = ["digits-gan", "digits-vae", "digits-flow", "moons-flow", "digits-diffusion"]


def latest(name: str) -> Path | None:
    versions = [p for p in (MODELS / name).glob("*") if p.is_dir() and p.name.isdigit()] if (MODELS / name).is_dir() else []
    return max(versions, key=lambda p: int(p.name), default=None)


def need(*names: str) -> None:
    for name in names:
        if latest(name) is None or not any(latest(name).glob("*.onnx")):
            pytest.skip(f"{name} is not in models/ (python -m training {name})")


@pytest.fixture(scope="module")
def url(module_server, tmp_path_factory):
    if not any(latest(n) for n in CLASSIFIERS + GENERATORS + ["diabetes-regressor"]):
        pytest.skip("no trained models in models/ (python -m training all)")
    return module_server(linked_committed_models(tmp_path_factory.mktemp("trained")))


def held_out(model: str = "digits-cnn") -> tuple[np.ndarray, np.ndarray, dict]:
    """The test split a classifier's card names: pixels (N, 8, 8) 0..16, labels, the card."""
    need(model)
    from sklearn.datasets import load_digits

    card = json.loads((latest(model) / "card.json").read_text())
    test = card["dataset"]["split"]["indices"]["test"]
    digits = load_digits()
    return digits.images[test], digits.target[test], card


def post(url, path, **kwargs) -> httpx.Response:
    return httpx.post(f"{url}{path}", timeout=120, **kwargs)


def labels_of(url, model, **kwargs) -> list[int]:
    response = post(url, f"/v1/models/{model}:predict", **kwargs)
    assert response.status_code == 200, response.text
    return [int(p["label"]) for p in response.json()["predictions"]]


def png(pixels: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8)).save(out, format="PNG")
    return out.getvalue()


# ------------------------------------------------------------------------ prediction


@pytest.mark.parametrize("model", CLASSIFIERS)
def test_classifiers_reproduce_their_cards_test_accuracy_from_arrays(url, model):
    images, truth, card = held_out(model)
    got = labels_of(url, model, json={"instances": images.tolist()})  # 8x8 nested, raw 0..16
    assert np.mean(np.array(got) == truth) == pytest.approx(card["metrics"]["test_accuracy"], abs=0.003)


@pytest.mark.parametrize("size", [8, 28, 200])
def test_the_cnn_labels_uploaded_photos_of_held_out_digits(url, size):
    images, truth, _ = held_out()
    images, truth = images[:100], truth[:100]
    paper = 255 - images / 16 * 255  # dark ink on white paper
    files = [("file", (f"{i}.png", png(np.asarray(Image.fromarray(p.astype(np.uint8)).resize((size, size), Image.NEAREST))),
                       "image/png")) for i, p in enumerate(paper)]
    got = labels_of(url, "digits-cnn", files=files)
    assert np.mean(np.array(got) == truth) >= 0.9, (size, got, truth.tolist())


def test_the_regressor_gives_a_value_and_its_uncertainty(url):
    need("diabetes-regressor")
    from service.protocol.task_schemas import PATIENT

    (prediction,) = post(url, "/v1/models/diabetes-regressor:predict", json={"instances": [PATIENT]}).json()["predictions"]
    assert 25 <= prediction["value"] <= 346 and prediction["std"] > 0  # the data set's target range


def test_the_digits_flow_finds_real_digits_likelier_than_noise(url):
    need("digits-flow")
    images = held_out()[0][:100]
    noise = np.random.default_rng(0).uniform(0, 16, images.shape)
    response = post(url, "/v1/models/digits-flow:predict", json={"instances": [*images.tolist(), *noise.tolist()]})
    density = np.array([p["log_density"] for p in response.json()["predictions"]])
    assert np.mean(density[:100] > density[100:]) >= 0.95  # its card: 98.9% of the test set


# ------------------------------------------------------------------------ generation


@pytest.mark.parametrize("model", GENERATORS)
def test_same_seed_same_samples_other_seed_other_samples(url, model):
    need(model)
    extra = {"steps": 10} if model == "digits-diffusion" else {}

    def samples(seed):
        response = post(url, f"/v2/models/{model}/generate", json={"num_samples": 4, "seed": seed, **extra})
        assert response.status_code == 200, response.text
        return np.array(response.json()["samples"])

    first = samples(1)
    assert first.shape == ((4, 2) if model == "moons-flow" else (4, 1, 8, 8))
    assert np.array_equal(first, samples(1)) and not np.allclose(first, samples(2))


@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
def test_diffusion_with_10_and_50_steps(url, sampler):
    need("digits-diffusion")
    for steps in (10, 50):
        body = post(url, "/v2/models/digits-diffusion/generate",
                    json={"num_samples": 3, "seed": 0, "steps": steps, "sampler": sampler}).json()
        assert np.array(body["samples"]).shape == (3, 1, 8, 8) and body["steps"] == steps


def test_conditional_diffusion_of_a_3_gives_what_the_cnn_calls_3(url):
    need("digits-diffusion", "digits-cnn")
    body = post(url, "/v2/models/digits-diffusion/generate",
                json={"num_samples": 10, "seed": 0, "steps": 50, "sampler": "ddim", "label": 3, "guidance": 2.0}).json()
    got = labels_of(url, "digits-cnn", json={"instances": body["samples"]})
    assert got.count(3) >= 8, got


def test_the_grid_png_comes_as_an_image(url):
    need("digits-gan")
    response = post(url, "/v2/models/digits-gan/generate", json={"num_samples": 16, "seed": 0},
                    headers={"Accept": "image/png"})
    assert response.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(response.content)).size == (4 * 9 * 4 + 4, 4 * 9 * 4 + 4)


# ------------------------------------------------------------------------ streams


def metric(url, name, model) -> float:
    prefix = f'{name}{{model="{model}",version="{latest(model).name}"}} '
    line = next((l for l in httpx.get(f"{url}/metrics").text.splitlines() if l.startswith(prefix)), None)
    return float(line.split()[-1]) if line else 0.0


def test_the_diffusion_stream_has_its_events_and_stops_on_disconnect(url):
    need("digits-diffusion")
    with httpx.stream("POST", f"{url}/v2/models/digits-diffusion/generate_stream",
                      json={"num_samples": 2, "seed": 0, "steps": 20, "every": 5}, timeout=120) as response:
        events = [json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: ")]
    assert [e.get("step") for e in events] == [5, 10, 15, None] and events[-1]["event"] == "done"

    # The heaviest stream there is (every step, 64 guided samples as PNGs), left after its first
    # event: it has most of its steps still to run when the disconnect arrives.
    max_steps = _max_steps()
    executions = lambda: metric(url, "modelserve_inference_exec_count_total", "digits-diffusion")
    before = executions()
    with httpx.stream("POST", f"{url}/v2/models/digits-diffusion/generate_stream", timeout=120,
                      json={"num_samples": 64, "steps": max_steps, "label": 3, "guidance": 2.0, "format": "png"}) as response:
        assert next(line for line in response.iter_lines() if line.startswith("data: "))
    ran = _settled(executions) - before
    assert 1 <= ran < max_steps


def _max_steps() -> int:
    import yaml

    config = yaml.safe_load((latest("digits-diffusion") / "config.yaml").read_text())
    return config.get("max_steps") or len(config["schedule"]["betas"])


def _settled(read, polls: int = 100) -> float:
    last = read()
    for _ in range(polls):
        time.sleep(0.1)
        if (now := read()) == last:
            return now
        last = now
    raise AssertionError("the value never stopped changing")


# ------------------------------------------------------------------------ errors


def test_errors_on_trained_models_are_4xx(url):
    need("digits-cnn", "digits-diffusion")
    cases = [
        ("/v2/models/digits-diffusion/generate", {"num_samples": 10_000}),
        ("/v2/models/digits-diffusion/generate", {"steps": 100_000}),
        ("/v2/models/digits-diffusion/generate", {"label": 10}),
        ("/v2/models/digits-diffusion/generate", {"sampler": "ddim", "colour": "red"}),
        ("/v2/models/digits-diffusion/generate", {"num_samples": "4"}),
        ("/v2/models/digits-cnn/generate", {}),
        ("/v1/models/digits-cnn:predict", {"instances": [{"image_b64": "bm90IGFuIGltYWdl"}]}),
        ("/v1/models/digits-diffusion:predict", {"instances": [[0] * 64]}),
    ]
    for path, body in cases:
        response = post(url, path, json=body)
        assert response.status_code == 400 and response.json()["error"], (path, body, response.text)
    assert post(url, "/v1/models/no-such-model:predict", json={"instances": [[0]]}).status_code == 404
