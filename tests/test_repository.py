"""Scanning and loading a repository: good, bad, missing and corrupt files side by side."""

from concurrent.futures import ThreadPoolExecutor

import pytest

from service.errors import InvalidInput, ModelNotFound, ModelNotReady
from service.repository import Registry
from service.settings import Settings
from tests import onnx_models


@pytest.fixture
def executor():
    with ThreadPoolExecutor(2) as pool:
        yield pool


def load(repo, executor, **settings) -> Registry:
    registry = Registry(Settings(model_repository=repo, providers=["CPUExecutionProvider"], **settings), executor)
    registry.load_all()
    return registry


def test_bare_model_onnx_is_a_model(tmp_path, executor):
    onnx_models.save(onnx_models.two_in_two_out(), tmp_path, "pair")
    registry = load(tmp_path, executor)
    model = registry.get("pair")
    assert [s.name for s in model.inputs] == ["x", "n"] and model.inputs[0].shape == (-1, 2)
    assert model.provider == "CPUExecutionProvider" and registry.ready


def test_latest_is_the_highest_version_that_loads(tmp_path, executor):
    onnx_models.save(onnx_models.add_constant(1), tmp_path, "m", version=1)
    onnx_models.save(onnx_models.add_constant(2), tmp_path, "m", version=2)
    onnx_models.save(onnx_models.add_constant(3), tmp_path, "m", version=10).write_bytes(b"corrupt")
    registry = load(tmp_path, executor)
    assert registry.get("m").version == 2
    rows = {row["version"]: row for row in registry.index()}
    assert rows["10"]["state"] == "UNAVAILABLE" and "could not be loaded" in rows["10"]["reason"]
    assert rows["2"]["state"] == "READY" and "1" not in rows  # latest: 1 loads one version
    with pytest.raises(ModelNotReady, match="version 10"):
        registry.get("m", "10")
    with pytest.raises(ModelNotFound):
        registry.get("m", "7")
    with pytest.raises(InvalidInput):
        registry.get("m", "-1")


def test_bad_models_fail_alone(tmp_path, executor):
    onnx_models.save(onnx_models.add_constant(1), tmp_path, "good")
    onnx_models.save(onnx_models.add_constant(1), tmp_path, "empty_file").write_bytes(b"")
    onnx_models.save(onnx_models.add_constant(1), tmp_path, "bad_config")
    (tmp_path / "bad_config" / "config.yaml").write_text("task: [")
    onnx_models.save(onnx_models.add_constant(1), tmp_path, "bad_version_config")
    (tmp_path / "bad_version_config" / "1" / "config.yaml").write_text("labels: 3\n")
    (tmp_path / "no_versions" / "latest").mkdir(parents=True)
    (tmp_path / "missing_graph" / "1").mkdir(parents=True)
    (tmp_path / ".hidden" / "1").mkdir(parents=True)
    (tmp_path / "a_file.onnx").write_bytes(b"x")
    registry = load(tmp_path, executor)
    assert registry.names() == ["bad_config", "bad_version_config", "empty_file", "good", "missing_graph", "no_versions"]
    assert registry.get("good").version == 1
    reasons = {row["name"]: row["reason"] for row in registry.index()}
    assert "not valid YAML" in reasons["bad_config"]
    assert "labels" in reasons["bad_version_config"]
    assert "no version folders" in reasons["no_versions"]
    assert "missing" in reasons["missing_graph"]
    assert "could not be loaded" in reasons["empty_file"]
    for name in ("bad_config", "empty_file", "missing_graph"):
        with pytest.raises(ModelNotReady):
            registry.get(name)


def test_names_are_only_looked_up(tmp_path, executor):
    onnx_models.save(onnx_models.add_constant(1), tmp_path, "good")
    registry = load(tmp_path, executor)
    for name in ("../good", "good/1", "..", "/etc/passwd", ""):
        with pytest.raises(ModelNotFound):
            registry.get(name)


def test_required_provider_that_is_missing_fails_the_load(tmp_path, executor):
    onnx_models.save(onnx_models.add_constant(1), tmp_path, "gpu_only")
    (tmp_path / "gpu_only" / "config.yaml").write_text(
        "providers: [NoSuchExecutionProvider, CPUExecutionProvider]\nrequire_first_provider: true\n"
    )
    onnx_models.save(onnx_models.add_constant(1), tmp_path, "fallback")
    (tmp_path / "fallback" / "config.yaml").write_text("providers: [NoSuchExecutionProvider, CPUExecutionProvider]\n")
    registry = load(tmp_path, executor)
    with pytest.raises(ModelNotReady, match="NoSuchExecutionProvider is required"):
        registry.get("gpu_only")
    assert registry.get("fallback").provider == "CPUExecutionProvider"


def test_missing_repository_serves_nothing(tmp_path, executor):
    registry = load(tmp_path / "nowhere", executor)
    assert registry.names() == [] and registry.ready


def test_an_unknown_name_is_answered_with_the_names_there_are(tmp_path, executor):
    assert "no model is loaded (POST /v2/repository/index" in _not_found(load(tmp_path / "nowhere", executor), "m")
    for i in range(3):
        onnx_models.save(onnx_models.add_constant(i), tmp_path, f"m{i:02}")
    assert _not_found(load(tmp_path, executor), "digits") == "unknown model 'digits'; the models are: m00, m01, m02"
    for i in range(3, 23):
        onnx_models.save(onnx_models.add_constant(i), tmp_path, f"m{i:02}")
    message = _not_found(load(tmp_path, executor), "digits")
    assert "m00, m01" in message and "m19" in message and "m20" not in message
    assert message.endswith("(POST /v2/repository/index lists all 23)")


def _not_found(registry: Registry, name: str) -> str:
    with pytest.raises(ModelNotFound) as raised:
        registry.get(name)
    return raised.value.message
