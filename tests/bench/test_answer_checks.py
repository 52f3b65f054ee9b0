"""The benchmark's and the soak's answer checks reject a wrong answer, against a real server."""

import asyncio
import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import time

import httpx
import numpy as np
import onnxruntime as ort
import orjson
import pytest

from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "bench"))
import cases as bench_cases
import loadgen
import procstat
import soak_traffic
import wrk_checked

# bench/models.py by path: the name `models` would also find the repository's models/ folder.
_spec = importlib.util.spec_from_file_location("bench_models", ROOT / "bench" / "models.py")
bench_models = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_models)


@pytest.fixture(scope="module")
def mlp(tmp_path_factory, module_server):
    repository = bench_models.write_repository(tmp_path_factory.mktemp("bench"), batching=True)
    return module_server(repository), repository


def _cases(repository, shift: float = 0.0) -> list[loadgen.Case]:
    session = ort.InferenceSession(str(repository / "mlp" / "1" / "model.onnx"), providers=["CPUExecutionProvider"])
    cases = []
    for seed in range(4):
        x = np.random.default_rng(seed).random((1, 64)).astype(np.float32)
        (expected,) = session.run(None, {"input": x})
        body = httpx.Request("POST", "/", json={"inputs": [
            {"name": "input", "shape": [1, 64], "datatype": "FP32", "data": x.reshape(-1).tolist()}]}).read()
        request = loadgen.http_request("127.0.0.1", 0, "/v2/models/mlp/infer", body, {"Content-Type": "application/json"})
        cases.append(loadgen.Case(request, expected + shift, loadgen.decode_json("logits"), x))
    return cases


def test_the_load_generator_checks_answers(mlp):
    url, repository = mlp
    result = loadgen.run(url, _cases(repository), connections=4, seconds=0.5, warmup=0.1, check_every=2)
    assert result.errors == 0 and result.checked >= 4 and result.requests > 0


def test_a_wrong_answer_fails_the_benchmark(mlp):
    url, repository = mlp
    with pytest.raises(loadgen.WrongAnswer, match="differs from ONNX Runtime"):
        loadgen.run(url, _cases(repository, shift=0.01), connections=2, seconds=0.5, warmup=0.1)


def test_another_request_s_answer_fails_the_benchmark_and_is_named(mlp):
    url, repository = mlp
    cases = _cases(repository)
    swapped = [loadgen.Case(c.request, cases[(i + 1) % len(cases)].expected, c.decode, c.inputs) for i, c in enumerate(cases)]
    with pytest.raises(loadgen.WrongAnswer, match=r"another request's input \(#\d of 4\)"):
        loadgen.run(url, swapped, connections=2, seconds=0.5, warmup=0.1)


def test_an_answer_off_by_more_than_the_tolerance_says_by_how_much(mlp):
    url, repository = mlp
    with pytest.raises(loadgen.WrongAnswer, match=r"largest difference 0\.01; it is no other request's answer"):
        loadgen.run(url, _cases(repository, shift=0.01), connections=1, seconds=0.2, warmup=0.0)


def test_a_port_is_known_to_be_served_by_the_process_holding_it():
    # bench/run.py refuses to time a port another process answers (one that took it first).
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
        try:
            assert procstat.listens(os.getpid(), port)
            assert not procstat.listens(other.pid, port)
        finally:
            other.kill()
            other.wait()


def test_the_soak_counts_a_wrong_v2_answer(mlp):
    url, repository = mlp
    meta = httpx.get(f"{url}/v2/models/mlp").json()
    right = soak_traffic._expected(repository, meta)
    wrong = {rows: {name: value + 0.01 for name, value in outputs.items()} for rows, outputs in right.items()}

    async def statuses(expected):
        async with httpx.AsyncClient(base_url=url) as client:
            return [await soak_traffic._v2_json(meta, expected)(client), await soak_traffic._v2_binary(meta, expected)(client)]

    assert asyncio.run(statuses(right)) == [200, 200]
    assert asyncio.run(statuses(wrong)) == [soak_traffic.WRONG, soak_traffic.WRONG]


needs_wrk = pytest.mark.skipif(not shutil.which("wrk"), reason="wrk is not installed")
INFER, JSON = "/v2/models/mlp/infer", {"Content-Type": "application/json"}


@needs_wrk
def test_wrk_checks_every_answer_against_a_verified_one(mlp):
    url, repository = mlp
    checked = wrk_checked.expected(url, INFER, _cases(repository), bench_cases.json_body, JSON)
    assert [c.id for c in checked] == ["r0", "r1", "r2", "r3"] and all(b'"id":"r' in c.expected for c in checked)
    result = wrk_checked.run(url + INFER, checked, JSON, connections=4, seconds=1, threads=1)
    assert result.requests > 0 and result.checked == result.requests == result.exact and result.client_cpu_s > 0


def test_an_answer_unlike_onnx_runtime_s_is_never_kept_as_the_expected_one(mlp):
    url, repository = mlp
    with pytest.raises(loadgen.WrongAnswer, match="differs from ONNX Runtime"):
        wrk_checked.expected(url, INFER, _cases(repository, shift=0.01), bench_cases.json_body, JSON)


@needs_wrk
def test_an_answer_unlike_the_verified_one_fails_the_wrk_run(mlp):
    url, repository = mlp
    checked = wrk_checked.expected(url, INFER, _cases(repository), bench_cases.json_body, JSON)
    # Within tolerance: its numbers' last digits differ (another rounding). Beyond it: 0.01 off.
    close = _renumbered(checked[0].expected, lambda v: v * (1 + 1e-6))
    result = wrk_checked.run(url + INFER, [wrk_checked.Checked(checked[0].id, checked[0].body, close)], JSON,
                             connections=2, seconds=1, threads=1)
    assert result.close == result.requests > 0 and result.exact == result.wrong == 0
    wrong = _renumbered(checked[1].expected, lambda v: v + 0.01)
    with pytest.raises(loadgen.WrongAnswer, match="differs from the verified one"):
        wrk_checked.run(url + INFER, [wrk_checked.Checked(checked[1].id, checked[1].body, wrong)], JSON,
                        connections=2, seconds=1, threads=1)


def _renumbered(answer: bytes, change) -> bytes:
    document = orjson.loads(answer)
    output = document["outputs"][0]
    output["data"] = [change(v) for v in output["data"]]
    return orjson.dumps(document)


@pytest.mark.skipif(not (ROOT / "models" / "en-fr-numbers").is_dir(), reason="models/en-fr-numbers is not trained")
@pytest.mark.parametrize("api", ["stream", "generate"])
def test_the_translation_bench_refuses_a_wrong_translation(tmp_path, module_server, api):
    import translation as bench_translation  # bench/translation.py

    repository = tmp_path / "models"
    shutil.copytree(ROOT / "models" / "en-fr-numbers", repository / "en-fr-numbers")
    url = module_server(repository)
    inputs = ["twelve", "eighty"]
    expected = asyncio.run(bench_translation.reference(url, inputs))
    assert expected == {"twelve": "douze", "eighty": "quatre-vingts"}

    async def load(answers: dict) -> dict:
        out = {"ttft": [], "itl": [], "sequences": 0, "tokens": 0}
        await bench_translation.client(url, inputs, 0, time.perf_counter() + 0.3, out, api, answers)
        return out

    assert asyncio.run(load(expected))["sequences"] > 0  # right answers pass
    with pytest.raises(RuntimeError, match="wrong translation of 'eighty'"):
        asyncio.run(load({**expected, "eighty": "quatre-vingt"}))


@pytest.mark.skipif(not (ROOT / "models" / "en-fr-numbers").is_dir(), reason="models/en-fr-numbers is not trained")
def test_the_translation_bench_times_the_committed_graphs(capsys):
    """`--graphs`: cross_kv's packed output (B, C, H, S, dk) feeds the cached step's C inputs."""
    import translation as bench_translation  # bench/translation.py

    bench_translation.print_graph_bound(ROOT / "models" / "en-fr-numbers" / "1", 11.5, rows=4)
    printed = capsys.readouterr().out
    assert "| decoder_cached | 4 |" in printed and "| cross_kv | 4 |" in printed
    assert "the translations/s of one at a time" in printed


@pytest.mark.skipif(not (ROOT / "models" / "en-fr-numbers").is_dir(), reason="models/en-fr-numbers is not trained")
def test_the_in_process_bench_streams_translations():
    """bench/inprocess.py --kinds translation: whole streams, each connection's next request
    sent when its last chunk is written; CPU a translation printed."""
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "inprocess.py"), "--trees", str(ROOT), "--kinds",
                          "translation", "--connections", "2", "--requests", "5", "--rounds", "1"],
                         capture_output=True, text=True, timeout=300, check=True).stdout
    assert "µs CPU a translation" in out and "2 connections" in out, out
