"""GET /v2/models/{name}/card and .../files/{samples.png|loss.png}, and the page's own files."""

import json

import httpx
import pytest

from tests.tasks import builders

CARD = {"name": "gan", "metrics": {"judge": {"score": 0.9}}, "parity": {"generator.onnx": {"max_abs_error": 1e-6}}}
SAMPLES, LOSS = b"\x89PNG samples", b"\x89PNG loss"


@pytest.fixture(scope="module")
def url(tmp_path_factory, module_server) -> str:
    repo = builders.task_repository(tmp_path_factory.mktemp("cards") / "models")
    (repo / "gan" / "1" / "card.json").write_text(json.dumps(CARD))
    (repo / "gan" / "1" / "samples.png").write_bytes(SAMPLES)
    (repo / "gan" / "1" / "loss.png").write_bytes(LOSS)
    (repo / "vae" / "1" / "card.json").write_text("{not json")
    (repo / "secret.txt").write_text("not for clients")
    return module_server(repo)


def test_card_with_its_served_config_and_files(url):
    body = httpx.get(f"{url}/v2/models/gan/card").json()
    assert body["card"] == CARD and body["files"] == ["samples.png", "loss.png"]
    assert (body["name"], body["version"], body["provider"]) == ("gan", "1", "CPUExecutionProvider")
    assert body["config"] == {"task": "gan", "latent_dim": 4, "max_samples": 16, "data": builders.digits_data()}
    assert httpx.get(f"{url}/v2/models/gan/versions/1/card").json() == body


def test_config_facts_a_form_needs(url):
    regressor = httpx.get(f"{url}/v2/models/regressor/card").json()
    assert regressor["config"]["features"] == builders.FEATURES and regressor["card"] is None
    assert regressor["files"] == []
    diffusion = httpx.get(f"{url}/v2/models/diffusion/card").json()["config"]
    assert (diffusion["default_steps"], diffusion["max_steps"], diffusion["null_label"]) == (20, 100, 10)
    assert diffusion["labels"] == builders.LABELS and "schedule" not in diffusion


def test_a_damaged_card_is_absent_not_a_server_error(url):
    response = httpx.get(f"{url}/v2/models/vae/card")
    assert response.status_code == 200 and response.json()["card"] is None


def test_files_are_the_versions_own_bytes(url):
    for name, data in (("samples.png", SAMPLES), ("loss.png", LOSS)):
        response = httpx.get(f"{url}/v2/models/gan/files/{name}")
        assert response.status_code == 200 and response.content == data
        assert response.headers["content-type"] == "image/png"
    missing = httpx.get(f"{url}/v2/models/regressor/files/loss.png")
    assert missing.status_code == 404 and missing.json() == {"error": "model 'regressor' version 1 has no loss.png"}


@pytest.mark.parametrize("name", ["card.json", "config.yaml", "generator.onnx", "..%2F..%2Fsecret.txt",
                                  "%2E%2E%2F%2E%2E%2Fsecret.txt", "samples.png%00"])
def test_no_other_file_is_served(url, name):
    response = httpx.get(f"{url}/v2/models/gan/files/{name}")
    assert response.status_code == 404 and b"not for clients" not in response.content


def test_unknown_model_or_version(url):
    assert httpx.get(f"{url}/v2/models/nope/card").status_code == 404
    assert httpx.get(f"{url}/v2/models/gan/versions/7/card").status_code == 404
    assert httpx.get(f"{url}/v2/models/nope/files/loss.png").status_code == 404


def test_the_page_and_its_files(url):
    page = httpx.get(f"{url}/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="/web/app.js">' in page.text
    script = httpx.get(f"{url}/web/app.js")
    assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")
    assert httpx.get(f"{url}/web/style.css").headers["content-type"].startswith("text/css")
    for name in ("nope.js", "..%2Fapp.py", "__init__.py"):
        assert httpx.get(f"{url}/web/{name}").status_code == 404
