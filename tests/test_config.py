"""config.yaml validation and merging."""

import pytest

from service.config import ConfigError, VersionPolicy, build_config, read_yaml


def test_defaults_make_a_generic_model():
    config = build_config({}, {})
    assert config.task == "generic" and config.graph_files() == {"model": "model.onnx"}
    assert config.version_policy.select([1, 3, 2]) == [3]


def test_version_fields_override_model_fields():
    config = build_config({"max_batch_size": 8, "task": "generic"}, {"task": "classification", "labels": ["a", "b"]})
    assert config.max_batch_size == 8 and config.task == "classification" and config.labels == ["a", "b"]


def test_task_graph_defaults_and_roles():
    assert build_config({}, {"task": "vae"}).graph_files() == {"encoder": "encoder.onnx", "decoder": "decoder.onnx"}
    with pytest.raises(ConfigError, match="needs graphs"):
        build_config({}, {"task": "vae", "graphs": {"encoder": "e.onnx"}})
    with pytest.raises(ConfigError, match="plain .onnx file name"):
        build_config({}, {"graphs": {"model": "../../etc/passwd.onnx"}})


@pytest.mark.parametrize(
    "fields, problem",
    [
        ({"task": "telepathy"}, "task"),
        ({"typo_field": 1}, "typo_field"),
        ({"max_batch_size": -1}, "max_batch_size"),
        ({"version_policy": {"latest": 1, "all": {}}}, "exactly one"),
        ({"data": {"shape": [8, 8], "raw_range": [0, 16]}}, "together"),
        ({"data": {"shape": [8, 8], "raw_range": [16, 0], "network_range": [0, 1]}}, "low < high"),
        ({"schedule": {"betas": [0.1, 1.5]}}, "beta"),
    ],
)
def test_invalid_configs_name_the_problem(fields, problem):
    with pytest.raises(ConfigError, match=problem):
        build_config({}, fields)


def test_version_policies():
    assert VersionPolicy(latest=2).select([1, 2, 3]) == [3, 2]
    assert VersionPolicy(all={}).select([1, 2, 3]) == [3, 2, 1]
    assert VersionPolicy(specific=[1, 3, 9]).select([1, 2, 3]) == [3, 1]


def test_read_yaml(tmp_path):
    assert read_yaml(tmp_path / "missing.yaml") == {}
    (tmp_path / "empty.yaml").write_text("")
    assert read_yaml(tmp_path / "empty.yaml") == {}
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping"):
        read_yaml(tmp_path / "list.yaml")
    (tmp_path / "bad.yaml").write_text("task: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        read_yaml(tmp_path / "bad.yaml")
    (tmp_path / "binary.yaml").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ConfigError):
        read_yaml(tmp_path / "binary.yaml")
