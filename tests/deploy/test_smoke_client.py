"""deploy/smoke.sh's calls (deploy/smoke_client.py) against a real server on the committed
models, without containers: a model added to models/ that the smoke client can't build a
request for fails here in seconds, not minutes into a smoke run."""

import sys

import pytest

from tests.conftest import linked_committed_models
from tests.deploy.tools import DEPLOY, ROOT, run

MODELS = ROOT / "models"


@pytest.fixture(scope="module")
def server(module_server, tmp_path_factory):
    if not any(MODELS.glob("*/*/*.onnx")):
        pytest.skip("no trained models in models/ (python -m training all)")
    return module_server(linked_committed_models(tmp_path_factory.mktemp("smoke")))


def test_every_model_answers_the_smoke_requests_over_http(server):
    port = server.rsplit(":", 1)[1]
    done = run(sys.executable, str(DEPLOY / "smoke_client.py"), "http", port, str(MODELS), timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    models = sorted(p.name for p in MODELS.iterdir() if p.is_dir())
    assert f"{len(models)} of {len(models)} models answered" in done.stdout


def test_every_model_answers_the_smoke_requests_over_grpc_and_a_generation_streams(server):
    port = server.grpc.rsplit(":", 1)[1]
    done = run(sys.executable, str(DEPLOY / "smoke_client.py"), "grpc", port, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ModelStreamInfer" in done.stdout and "'done']" in done.stdout
