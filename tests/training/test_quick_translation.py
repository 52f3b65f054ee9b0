"""`python -m training en-fr-numbers --quick`: the translator trains a few steps, exports its
graphs (the encoder, the full-prefix step, and the key/value-cache pair) with parity proven,
and writes a version folder that validates and that the service serves."""

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from service.config import build_config, read_yaml

ROOT = Path(__file__).resolve().parents[2]
NAME = "en-fr-numbers"
pytestmark = pytest.mark.timeout(900)  # a few minutes on 2 shared cores: exports and parity


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("quick-translation") / "models"
    done = subprocess.run([sys.executable, "-m", "training", NAME, "--quick", "--output", str(root)],
                          cwd=ROOT, capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, done.stderr[-4000:]
    return root


def test_the_version_folder_describes_itself(repo):
    vdir = repo / NAME / "1"
    config = build_config(read_yaml(repo / NAME / "config.yaml"), read_yaml(vdir / "config.yaml"))
    assert config.task == "translation" and config.graph_files() == {
        "encoder": "encoder.onnx", "decoder": "decoder.onnx", "cross_kv": "cross_kv.onnx",
        "decoder_cached": "decoder_cached.onnx"}
    assert config.vocabulary.target[:3] == ["<pad>", "<bos>", "<eos>"]
    assert config.max_input_tokens == 14 and config.max_output_tokens == 20
    card = json.loads((vdir / "card.json").read_text())
    assert card["quick"] is True and card["command"].startswith(f"python -m training {NAME} ")
    graphs = ("encoder.onnx", "decoder.onnx", "cross_kv.onnx", "decoder_cached.onnx")
    assert all(card["parity"][g]["max_scaled_error"] <= 1e-4 for g in graphs)
    assert card["decoder_cache"]["cost_ms"]["batch_16_ms"]["cached"] > 0
    assert "argv" not in card  # a path of the machine it ran on would be in it
    for path in vdir.iterdir():  # no exporter stack traces or paths in what would be committed
        assert b'File "/' not in path.read_bytes() and str(ROOT).encode() not in path.read_bytes()
    assert (vdir / "loss.png").stat().st_size > 0


def test_the_service_serves_it(repo, module_server):
    url = module_server(repo)
    response = httpx.post(f"{url}/v2/models/{NAME}/generate", json={"text_input": "twelve"}, timeout=60)
    assert response.status_code == 200, response.text
    assert response.json()["finish_reason"] in ("stop", "length")
