"""In-flight batching of translations: concurrent sequences share decoder executions step by
step, each greedy output stays what it is alone, a request joins at the next step and leaves as
soon as it is done, and a stream whose client leaves runs no further step."""

import asyncio
import contextlib
import json
import re
import shutil
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
MODEL = "en-fr-numbers"
TRAINED = ROOT / "models" / MODEL
# Different source lengths and output lengths (2 to 19 tokens), so rows of one execution sit
# at different positions with different padding.
TEXTS = [
    "twelve",
    "seven hundred and ninety-seven thousand, seven hundred and ninety-seven",
    "eighty",
    "four hundred thousand and one",
    "ninety-one thousand, one hundred and eleven",
    "six",
    "twenty-one thousand and twenty-one",
    "nine hundred and ninety-nine thousand, nine hundred and ninety-nine",
]

pytestmark = pytest.mark.skipif(not TRAINED.is_dir(), reason="models/en-fr-numbers is not trained")


@pytest.fixture(scope="module")
def url(module_server, tmp_path_factory) -> str:
    repo = tmp_path_factory.mktemp("inflight") / "models"
    shutil.copytree(TRAINED, repo / MODEL)
    return module_server(repo)


def metric(url: str, name: str) -> float:
    return series_value(httpx.get(f"{url}/metrics").text, name)


def series_value(text: str, name: str) -> float:
    found = re.search(rf'^{name}\{{model="{MODEL}",version="1"\}} (\S+)$', text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def executions(url: str) -> float:
    return metric(url, "modelserve_inference_exec_count_total")


async def translate_all(url: str, texts: list[str], **parameters) -> list[dict]:
    async with httpx.AsyncClient(timeout=120) as client:
        responses = await asyncio.gather(*(
            client.post(f"{url}/v2/models/{MODEL}/generate",
                        json={"text_input": t, "parameters": parameters}) for t in texts))
    assert all(r.status_code == 200 for r in responses), [r.text for r in responses]
    return [r.json() for r in responses]


@pytest.mark.parametrize("parameters", [{}, {"beam_width": 3}, {"temperature": 1.5, "seed": 7}])
def test_concurrent_sequences_share_steps_and_match_solo_runs(url, parameters):
    before = executions(url)
    solo = [asyncio.run(translate_all(url, [t], **parameters))[0] for t in TEXTS]
    solo_executions = executions(url) - before
    before = executions(url)
    together = asyncio.run(translate_all(url, TEXTS, **parameters))
    shared = executions(url) - before
    for alone, batched, text in zip(solo, together, TEXTS, strict=True):
        assert batched["text_output"] == alone["text_output"], f"differs when batched: {text}"
    assert shared < solo_executions / 2, (shared, solo_executions)  # steps were shared, not run one by one


async def _join_and_leave(url: str) -> tuple[list[str], dict]:
    """A long stream runs; a short request joins after its first token and must finish first.
    Both run among 32 busy sequences on a client whose connections are already open: alone,
    the long one's steps are so short that on a loaded machine it could end before the short
    request even arrived, and the two would never share a step."""
    order: list[str] = []
    short_result: dict = {}
    async with httpx.AsyncClient(timeout=120) as client, _busy(client, url, 32):
        async def long_stream():
            body = {"text_input": TEXTS[1]}
            async with client.stream("POST", f"{url}/v2/models/{MODEL}/generate_stream", json=body) as response:
                async for line in response.aiter_lines():
                    if not line.startswith("data: "):
                        continue
                    event = json.loads(line[6:])
                    if event.get("index") == 0:
                        joined.set()
                    if event.get("event") == "done":
                        order.append("long")

        async def short_request():
            await joined.wait()
            response = await client.post(f"{url}/v2/models/{MODEL}/generate",
                                         json={"text_input": "six"})
            short_result.update(response.json())
            order.append("short")

        joined = asyncio.Event()
        await asyncio.gather(long_stream(), short_request())
    return order, short_result


def test_a_request_joins_at_the_next_step_and_leaves_when_done(url):
    order, short = _join_and_leave_sync(url)
    assert short["text_output"] == "six"
    assert order == ["short", "long"]  # it never waited for the long sequence it shared steps with


def _join_and_leave_sync(url):
    return asyncio.run(_join_and_leave(url))


async def _leave_a_busy_stream(url: str) -> None:
    """Leave a stream after its first token while 48 other sequences keep every step busy, so
    the stream is still decoding when the server sees the connection close."""
    async with (httpx.AsyncClient(timeout=120) as client, _busy(client, url, 48),
                client.stream("POST", f"{url}/v2/models/{MODEL}/generate_stream",
                              json={"text_input": TEXTS[7]}) as response):
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                break  # the first token: leave


@contextlib.asynccontextmanager
async def _busy(client: httpx.AsyncClient, url: str, sequences: int):
    """`sequences` long translations back to back, running before the block starts and until
    it ends: every step inside it is shared with them. They are sent from a thread of their own
    (its own event loop and client), so the test's own requests never wait behind their
    responses on the client's side: with a fast model a step is well under a millisecond, and a
    request held up by 32 others' reading arrived after the stream it was meant to join had
    ended."""
    stop = threading.Event()

    async def keep_busy(other: httpx.AsyncClient, text: str) -> None:
        while not stop.is_set():
            response = await other.post(f"{url}/v2/models/{MODEL}/generate", json={"text_input": text})
            assert response.status_code == 200, response.text

    failed: list[BaseException] = []

    async def load() -> None:
        try:
            async with httpx.AsyncClient(timeout=120) as other:
                await asyncio.gather(*(keep_busy(other, TEXTS[1 + i % 2 * 6]) for i in range(sequences)))
        except Exception as exc:  # noqa: BLE001  (seen by the test, not lost in the thread)
            failed.append(exc)

    thread = threading.Thread(target=asyncio.run, args=(load(),), daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while await _running(client, url) < sequences // 2:
        assert time.monotonic() < deadline, "the busy sequences never ran"
        await asyncio.sleep(0.01)
    try:
        yield
    finally:
        stop.set()
        await asyncio.to_thread(thread.join, 60)
    assert not failed, failed


async def _running(client: httpx.AsyncClient, url: str) -> float:
    return series_value((await client.get(f"{url}/metrics")).text, "modelserve_running_sequences")


def test_a_stream_stops_at_the_next_step_when_the_client_leaves(url):
    def count() -> float:  # label order is the client library's: match each label alone
        for line in httpx.get(f"{url}/metrics").text.splitlines():
            if line.startswith("modelserve_inference_request_failure_total{") and all(
                    label in line for label in (f'model="{MODEL}"', 'version="1"', 'reason="cancelled"')):
                return float(line.split()[-1])
        return 0.0

    before = count()
    asyncio.run(_leave_a_busy_stream(url))
    deadline = time.monotonic() + 10
    while metric(url, "modelserve_running_sequences") > 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert metric(url, "modelserve_running_sequences") == 0
    assert count() == before + 1  # it ended unfinished: its loop stopped, not ran to the end
    settled = executions(url)
    time.sleep(0.5)
    assert executions(url) == settled  # and nothing runs on for it


def test_token_metrics(url):
    """One time to first token per translation, one inter-token latency per later token, every
    token counted: greedy and sampled rows of shared steps, and beam search."""
    names = ("modelserve_time_to_first_token_seconds_count", "modelserve_inter_token_latency_seconds_count",
             "modelserve_generated_tokens_total")
    before = {name: metric(url, name) for name in names}
    answers = [*asyncio.run(translate_all(url, TEXTS[:3])),
               *asyncio.run(translate_all(url, TEXTS[:2], temperature=1.5, seed=3)),
               *asyncio.run(translate_all(url, TEXTS[:1], beam_width=2))]
    tokens = sum(a["tokens"] for a in answers)
    assert all(a["tokens"] > 0 for a in answers)
    after = {name: metric(url, name) - before[name] for name in names}
    assert after == {names[0]: len(answers), names[1]: tokens - len(answers), names[2]: tokens}
    assert "modelserve_running_sequences" in httpx.get(f"{url}/metrics").text


@pytest.fixture(scope="module")
def url_without_cache(module_server, tmp_path_factory) -> str:
    """The same version without decoder_cached.onnx and cross_kv.onnx: the stepper runs the
    full-prefix graph."""
    repo = tmp_path_factory.mktemp("nocache") / "models"
    shutil.copytree(TRAINED, repo / MODEL)
    version = repo / MODEL / "1" / "config.yaml"
    text = version.read_text(encoding="utf-8")
    assert ", cross_kv: cross_kv.onnx, decoder_cached: decoder_cached.onnx" in text
    version.write_text(text.replace(", cross_kv: cross_kv.onnx, decoder_cached: decoder_cached.onnx", ""), encoding="utf-8")
    (repo / MODEL / "1" / "decoder_cached.onnx").unlink()
    (repo / MODEL / "1" / "cross_kv.onnx").unlink()
    return module_server(repo)


def test_the_key_value_cache_changes_no_output(url, url_without_cache):
    """Greedy and seeded sampling, concurrent (rows at different positions share each call):
    the cached step gives the tokens and attention the full-prefix step gives."""
    for parameters in ({"attention": True}, {"temperature": 1.2, "seed": 3, "attention": True}):
        cached = asyncio.run(translate_all(url, TEXTS, **parameters))
        full = asyncio.run(translate_all(url_without_cache, TEXTS, **parameters))
        for a, b in zip(cached, full, strict=True):
            assert a["text_output"] == b["text_output"]
            assert a["finish_reason"] == b["finish_reason"]
            assert abs(np.asarray(a["attention"]["weights"]) - np.asarray(b["attention"]["weights"])).max() < 1e-4


def test_a_stop_string_ends_the_sequence_and_it_leaves_the_batch(url):
    together = asyncio.run(translate_all(url, TEXTS[:4], stop="mille"))
    by_text = dict(zip(TEXTS[:4], together, strict=True))
    assert by_text["twelve"]["text_output"] == "douze"
    long = by_text[TEXTS[1]]
    assert long["text_output"].endswith("mille") and long["finish_reason"] == "stop"
    assert metric(url, "modelserve_running_sequences") == 0


def test_the_cached_step_without_cross_kv_is_a_load_error_naming_both(module_server, tmp_path_factory):
    repo = tmp_path_factory.mktemp("halfcache") / "models"
    shutil.copytree(TRAINED, repo / MODEL)
    version = repo / MODEL / "1" / "config.yaml"
    version.write_text(version.read_text(encoding="utf-8").replace(" cross_kv: cross_kv.onnx,", ""),
                       encoding="utf-8")
    url = module_server(repo)
    response = httpx.post(f"{url}/v2/models/{MODEL}/generate", json={"text_input": "six"})
    assert response.status_code == 503
    assert "decoder_cached and cross_kv go together" in response.json()["error"]
