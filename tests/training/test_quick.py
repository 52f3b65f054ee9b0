"""`python -m training <models> --quick` end to end: every family of one-shot and diffusion models
trains, exports, verifies and writes a repository entry that validates against the contract and
that the real service serves. The translator and the graph networks have quick tests of their own
(test_quick_translation.py, test_graph_models.py), so this run leaves them out."""

import json
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import yaml

from service.config import TASK_GRAPHS, build_config, read_yaml
from tests.training.portable import traces

ROOT = Path(__file__).resolve().parents[2]
# Training every model, even quickly, can take more than pytest's default 300 s on a loaded
# machine; the run itself is bounded by the 600 s given to its subprocess below.
pytestmark = pytest.mark.timeout(900)
MODELS = {
    "digits-shallow": "classification",
    "digits-deep": "classification",
    "digits-cnn": "classification",
    "diabetes-regressor": "regression",
    "digits-gan": "gan",
    "digits-vae": "vae",
    "digits-flow": "flow",
    "moons-flow": "flow",
    "digits-diffusion": "diffusion",
    "digits-text2img": "text-to-image",
}
GENERATIVE = {"gan", "vae", "flow", "diffusion", "text-to-image"}
CARD_FIELDS = {"name", "version", "task", "family", "dataset", "metrics", "parity", "parameters",
               "training_time_s", "seed", "hyperparameters", "versions", "date", "command"}


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    """One quick run of every model through the CLI, as a user would type it.

    One torch thread: make test runs a pytest worker per core beside it, and two threads
    fighting them for the cores spin rather than work.
    """
    root = tmp_path_factory.mktemp("quick") / "models"
    done = subprocess.run(
        [sys.executable, "-m", "training", *MODELS, "--quick", "--threads", "1", "--output", str(root)],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return root


def config_of(repo: Path, name: str, version: int = 1):
    return build_config(read_yaml(repo / name / "config.yaml"),
                        read_yaml(repo / name / str(version) / "config.yaml"))


@pytest.mark.parametrize("name", MODELS)
def test_config_validates_against_the_contract(repo, name):
    config = config_of(repo, name)
    assert config.task == MODELS[name]
    assert set(config.graph_files()) == set(TASK_GRAPHS[config.task])
    assert config.description
    # Operator defaults live in the model-level file, training's knowledge in the version's.
    assert yaml.safe_load((repo / name / "config.yaml").read_text()) == {
        "max_batch_size": 64, "max_queue_delay_ms": 0}
    if config.task in ("classification", "diffusion"):
        assert config.labels == [str(i) for i in range(10)]
    if config.task == "regression":
        assert config.features == ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]
    if config.task in ("gan", "vae"):
        assert config.latent_dim
    if config.task == "diffusion":
        assert config.null_label == 10
        assert config.max_steps == len(config.schedule.betas)
        assert 1 <= config.default_steps <= config.max_steps
    if name.startswith("digits"):
        assert config.data.shape == [1, 8, 8] and config.data.raw_range == (0.0, 16.0)
        assert config.data.image.height == 8


def dummy_inputs(sess: ort.InferenceSession, batch: int) -> dict[str, np.ndarray]:
    feeds = {}
    for i in sess.get_inputs():
        shape = [batch, *i.shape[1:]]
        assert all(isinstance(d, int) for d in shape[1:]), f"{i.name}: only the batch is dynamic"
        if i.type == "tensor(int64)":
            feeds[i.name] = np.zeros(shape, dtype=np.int64)
        else:
            feeds[i.name] = np.random.default_rng(0).uniform(0, 1, shape).astype(np.float32)
    return feeds


@pytest.mark.parametrize("name", MODELS)
def test_graphs_have_a_dynamic_batch_axis(repo, name):
    config = config_of(repo, name)
    for file_name in config.graph_files().values():
        path = repo / name / "1" / file_name
        graph = onnx.load(str(path)).graph
        for value in [*graph.input, *graph.output]:
            assert value.type.tensor_type.shape.dim[0].dim_param, f"{file_name}:{value.name}"
        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        for batch in (1, 7, 64):
            outputs = sess.run(None, dummy_inputs(sess, batch))
            assert all(o.shape[0] == batch for o in outputs)
            assert all(np.isfinite(o).all() for o in outputs)


@pytest.mark.parametrize("name", MODELS)
def test_card_has_the_required_fields(repo, name):
    vdir = repo / name / "1"
    card = json.loads((vdir / "card.json").read_text())
    assert CARD_FIELDS <= set(card)
    assert card["quick"] is True
    assert card["command"].startswith(f"python -m training {name} ")
    assert card["parameters"] > 0
    split = card["dataset"]["split"]
    assert split["seed"] == 0 and sum(split["sizes"].values()) == card["dataset"]["samples"]
    assert len(split["indices"]["test"]) == split["sizes"]["test"]
    for graph in config_of(repo, name).graph_files().values():
        assert card["parity"][graph]["max_scaled_error"] <= 1e-4
    assert (vdir / "loss.png").stat().st_size > 0
    if card["task"] in GENERATIVE:
        assert (vdir / "samples.png").stat().st_size > 0
    if card["task"] in GENERATIVE and name != "moons-flow":
        verdicts = [v for k, v in card["metrics"].items() if k.startswith("judge")]
        assert verdicts and all(sum(v["histogram"].values()) == v["samples"] for v in verdicts)


def test_nothing_written_names_the_machine(repo):
    """Written under an absolute --output: no path, host or user name in any file."""
    found = {str(p.relative_to(repo)): traces(p) for p in sorted(repo.rglob("*")) if p.is_file()}
    assert {name: paths for name, paths in found.items() if paths} == {}


def test_a_second_run_writes_the_next_version_and_keeps_the_operator_config(repo):
    (repo / "digits-shallow" / "config.yaml").write_text("max_batch_size: 8\n")
    done = subprocess.run(
        [sys.executable, "-m", "training", "digits-shallow", "--quick", "--threads", "1", "--output", str(repo)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    assert (repo / "digits-shallow" / "1" / "model.onnx").exists()
    assert (repo / "digits-shallow" / "2" / "model.onnx").exists()
    assert (repo / "digits-shallow" / "config.yaml").read_text() == "max_batch_size: 8\n"
    assert json.loads((repo / "digits-shallow" / "2" / "card.json").read_text())["version"] == 2


@pytest.fixture(scope="module")
def base_url(repo, module_server) -> str:
    return module_server(repo)


@pytest.mark.parametrize("name", [n for n, task in MODELS.items() if task == "classification"])
def test_the_service_classifies_with_a_quick_classifier(base_url, name):
    pixels = np.random.default_rng(1).uniform(0, 1, (2, 1, 8, 8)).round(3)
    body = {"inputs": [{"name": "x", "shape": [2, 1, 8, 8], "datatype": "FP32",
                        "data": pixels.ravel().tolist()}]}
    reply = httpx.post(f"{base_url}/v2/models/{name}/infer", json=body, timeout=30)
    assert reply.status_code == 200, reply.text
    out = reply.json()["outputs"][0]
    assert out["shape"] == [2, 10] and len(out["data"]) == 20


def test_the_service_predicts_with_the_quick_regressor(base_url):
    patients = [[59, 2, 32.1, 101, 157, 93.2, 38, 4, 4.8598, 87],
                [48, 1, 21.6, 87, 183, 103.2, 70, 3, 3.8918, 69]]
    body = {"inputs": [{"name": "x", "shape": [2, 10], "datatype": "FP32",
                        "data": [v for row in patients for v in row]}]}
    reply = httpx.post(f"{base_url}/v2/models/diabetes-regressor/infer", json=body, timeout=30)
    assert reply.status_code == 200, reply.text
    outputs = {o["name"]: o for o in reply.json()["outputs"]}
    assert outputs["mean"]["shape"] == [2, 1] and outputs["variance"]["shape"] == [2, 1]
    assert all(v > 0 for v in outputs["variance"]["data"])


@pytest.mark.parametrize("name", [n for n, task in MODELS.items() if task in GENERATIVE])
def test_the_service_loads_each_quick_generative_model(base_url, name):
    reply = httpx.get(f"{base_url}/v2/models/{name}/ready", timeout=30)
    assert reply.status_code == 200, reply.text
