"""The out-of-distribution guard of the trained digit classifiers, through a real server.

digits-cnn's config.yaml names digits-flow as its guard; `digits-cnn-refuse` is the same version
folder under a model-level config.yaml that sets `guard.action: refuse` (the operator's word).
"""

import httpx
import numpy as np
import pytest

from tests.tasks.test_trained import MODELS, held_out, latest, need

NOISE = np.random.default_rng(7).uniform(0, 16, (3, 8, 8))


@pytest.fixture(scope="module")
def url(module_server, tmp_path_factory):
    need("digits-cnn", "digits-flow", "moons-flow")
    repo = tmp_path_factory.mktemp("guarded")
    for name in ("digits-cnn", "digits-flow", "moons-flow"):
        (repo / name).symlink_to((MODELS / name).resolve(), target_is_directory=True)
    refuse = repo / "digits-cnn-refuse"
    refuse.mkdir()
    (refuse / "1").symlink_to(latest("digits-cnn").resolve(), target_is_directory=True)
    (refuse / "config.yaml").write_text("max_batch_size: 64\nguard: {action: refuse}\n")
    lonely = repo / "digits-cnn-no-flow"  # its guard names a model that is not there
    lonely.mkdir()
    (lonely / "1").symlink_to(latest("digits-cnn").resolve(), target_is_directory=True)
    (lonely / "config.yaml").write_text("guard: {model: no-such-flow}\n")
    moons = repo / "digits-cnn-moons-guard"  # a density of 2-D points guarding 8x8 digits
    moons.mkdir()
    (moons / "1").symlink_to(latest("digits-cnn").resolve(), target_is_directory=True)
    (moons / "config.yaml").write_text("guard: {model: moons-flow}\n")
    return module_server(repo)


def predict(url, model, instances):
    return httpx.post(f"{url}/v1/models/{model}:predict", json={"instances": instances}, timeout=60)


def flagged_total(url) -> float:
    text = httpx.get(f"{url}/metrics").text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith('modelserve_out_of_distribution_total{model="digits-cnn"'))


def test_test_digits_pass_and_noise_is_flagged_with_its_density_and_percentile(url):
    digits, _, _ = held_out()
    before = flagged_total(url)
    predictions = predict(url, "digits-cnn", [*digits[:20].tolist(), *NOISE.tolist()]).json()["predictions"]
    for p in predictions[:20]:
        assert p["in_distribution"] is True and 0 <= p["percentile"] <= 100 and "label" in p
    for p in predictions[20:]:
        assert p["in_distribution"] is False and p["percentile"] == 0 and p["log_density"] < -147
        assert "label" in p  # flag (the default) answers anyway
    assert flagged_total(url) == before + 3


def test_the_guard_density_is_the_flows_own(url):
    digits, _, _ = held_out()
    flow = predict(url, "digits-flow", digits[:5].tolist()).json()["predictions"]
    guarded = predict(url, "digits-cnn", digits[:5].tolist()).json()["predictions"]
    for f, g in zip(flow, guarded):
        assert g["log_density"] == pytest.approx(f["log_density"], rel=1e-6)


def test_refuse_answers_the_outsider_with_an_error_and_the_others_as_usual(url):
    digits, truth, _ = held_out()
    response = predict(url, "digits-cnn-refuse", [digits[0].tolist(), NOISE[0].tolist()])
    assert response.status_code == 200
    good, refused = response.json()["predictions"]
    assert good["label"] == str(truth[0]) and good["in_distribution"] is True
    assert "label" not in refused and refused["in_distribution"] is False
    assert "log-density" in refused["error"] and "threshold -147.8" in refused["error"]


@pytest.mark.parametrize("model, problem", [
    ("digits-cnn-no-flow", "'no-such-flow' is not available"),
    ("digits-cnn-moons-guard", "takes 2 values per instance, not 64"),
])
def test_a_guard_that_cannot_serve_is_a_503_naming_it(url, model, problem):
    digits, _, _ = held_out()
    response = predict(url, model, [digits[0].tolist()])
    assert response.status_code == 503 and problem in response.json()["error"], response.text
