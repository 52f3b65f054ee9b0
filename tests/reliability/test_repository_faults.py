"""Faults written into a polled repository while requests run: the last good version keeps
serving, no request fails because of the swap, and the fault shows in the index and metrics."""

import os
import re
import shutil

import httpx
import pytest

from tests import onnx_models
from tests.reliability.load import Load, wait_for

LATEST, FIRST = "/v2/models/m/infer", "/v2/models/m/versions/1/infer"
POLL = ["--model-control-mode", "poll", "--repository-poll-secs", "0.2"]


@pytest.fixture
def repo(tmp_path):
    """m: version 1 adds 1, version 2 adds 2; both served, batched."""
    repo = tmp_path / "models"
    onnx_models.save(onnx_models.add_constant(1.0), repo, "m", version=1)
    onnx_models.save(onnx_models.add_constant(2.0), repo, "m", version=2)
    (repo / "m" / "config.yaml").write_text("version_policy: {all: {}}\nmax_batch_size: 8\n")
    return repo


def index_row(url: str, version: str) -> dict | None:
    rows = httpx.post(f"{url}/v2/repository/index", timeout=10).json()
    return next((r for r in rows if r["name"] == "m" and r["version"] == version), None)


def load_failures(url: str, version: str) -> float:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    found = re.search(rf'^modelserve_model_load_failure_total\{{model="m",version="{version}"\}} (\S+)$', text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def assert_all_served(load: Load, path: str, value: float) -> None:
    assert load.statuses(path) == {200: len(load.values(path))}, load.statuses(path)
    assert set(load.values(path)) == {value}


def reload_failed(url: str, version: str) -> bool:
    row = index_row(url, version)
    return row is not None and row["state"] == "READY" and "reload failed" in row["reason"]


def rewrite(path, data: bytes) -> None:
    # In place, as a careless copy would: the poller may well see it half written.
    path.write_bytes(data)
    os.utime(path, ns=(path.stat().st_mtime_ns + 10**9,) * 2)  # a change even within one mtime tick


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_a_damaged_model_file_keeps_the_loaded_version_serving(repo, serve_repository, damage):
    url = serve_repository(repo, args=POLL)
    model_file = repo / "m" / "2" / "model.onnx"
    good = model_file.read_bytes()
    with Load(url, [LATEST, FIRST]) as load:
        rewrite(model_file, good[: len(good) // 2] if damage == "truncated" else os.urandom(len(good)))
        wait_for(lambda: reload_failed(url, "2"), what="the index shows the failed reload")
        load.wait_for_answers(50)
    assert_all_served(load, LATEST, 3.0)  # version 2, from the files it loaded before
    assert_all_served(load, FIRST, 2.0)
    assert load_failures(url, "2") >= 1

    rewrite(model_file, good)  # repaired: the reason goes away
    wait_for(lambda: index_row(url, "2")["reason"] == "", what="the repaired version reloads")


def test_an_invalid_config_keeps_every_version_serving(repo, serve_repository):
    url = serve_repository(repo, args=POLL)
    with Load(url, [LATEST, FIRST]) as load:
        (repo / "m" / "config.yaml").write_text("version_policy: {all: {}}\nmax_batch_size: many\n")
        wait_for(lambda: reload_failed(url, "1") and reload_failed(url, "2"), what="the index shows the bad config")
        load.wait_for_answers(50)
    assert_all_served(load, LATEST, 3.0)
    assert_all_served(load, FIRST, 2.0)
    assert "max_batch_size" in index_row(url, "2")["reason"]
    assert load_failures(url, "") >= 1  # the model as a whole: its config


def test_deleting_the_latest_version_moves_traffic_to_the_one_before(repo, serve_repository):
    url = serve_repository(repo, args=POLL)
    second = "/v2/models/m/versions/2/infer"
    with Load(url, [LATEST, FIRST, second]) as load:
        # Delete only once version 2 has answered by name and as the latest: on a loaded machine
        # the poll could otherwise drop it before the first such request, and the side before
        # the swap would never be seen (the threads of one path may start late).
        wait_for(lambda: load.statuses(second)[200] > 0 and load.statuses(LATEST)[200] > 0,
                 what="version 2 answers by name and as the latest")
        shutil.rmtree(repo / "m" / "2")
        wait_for(lambda: index_row(url, "2") is None, what="version 2 leaves the index")
        load.wait_for_answers(50)
    assert load.statuses(LATEST) == {200: len(load.values(LATEST))}
    assert set(load.values(LATEST)) == {3.0, 2.0}  # from version 2, then from version 1
    assert_all_served(load, FIRST, 2.0)
    # Naming the deleted version is answered, 200 before the swap and 404 after; nothing else.
    assert set(load.statuses(second)) == {200, 404}
    assert httpx.post(f"{url}{second}", json={}).status_code == 404


def test_deleting_the_only_version_keeps_it_serving_from_memory(tmp_path, serve_repository):
    repo = tmp_path / "models"
    onnx_models.save(onnx_models.add_constant(1.0), repo, "m", version=1)
    url = serve_repository(repo, args=POLL)
    with Load(url, [LATEST, FIRST]) as load:
        shutil.rmtree(repo / "m" / "1")
        wait_for(lambda: reload_failed(url, "1"), what="the index shows the missing version")
        load.wait_for_answers(50)
    assert_all_served(load, LATEST, 2.0)
    assert_all_served(load, FIRST, 2.0)
    assert "no version folders" in index_row(url, "1")["reason"]
    assert load_failures(url, "") >= 1
