"""Text-to-image through a real server: prompts in, the sampler over the encoded prompt out; bad
prompts are 400s that say what is wrong; the text encoder runs once per request."""

import json

import httpx
import numpy as np
import pytest
import tritonclient.http as triton

from service.sampling.diffusion import run, sample
from tests.tasks import builders

MODEL = "text2img"


@pytest.fixture(scope="module")
def url(tmp_path_factory, module_server):
    return module_server(builders.task_repository(tmp_path_factory.mktemp("repo")))


def generate(url, **params) -> httpx.Response:
    return httpx.post(f"{url}/v2/models/{MODEL}/generate", json=params, timeout=60)


def samples(url, **params) -> np.ndarray:
    response = generate(url, **params)
    assert response.status_code == 200, response.text
    return np.array(response.json()["samples"])


def expected(prompts: list[str], seed: int, steps: int, guidance: float) -> np.ndarray:
    """By hand: text = sum of word embeddings, table rows = distinct prompts then the null one."""
    ids = {w: i for i, w in enumerate(builders.VOCABULARY)}
    distinct = list(dict.fromkeys(p for p in prompts if p))
    rows = [sum(builders.TEXT_E[ids[w]] for w in p.split()) for p in distinct]
    rows.append(builders.TEXT_E[ids["<null>"]])
    text = np.array(rows)  # (P + 1, 4)
    labels = np.array([distinct.index(p) if p else len(distinct) for p in prompts]) if distinct else None

    def denoise(x_t, t, row):
        return 0.1 * x_t + 0.05 * (text[row] @ builders.TEXT_W).reshape(-1, 1, 8, 8)

    gen = sample(builders.betas(100), (len(prompts), 1, 8, 8), steps=steps, labels=labels,
                 null_label=len(distinct), guidance=guidance if labels is not None else 0.0, seed=seed)
    return builders.to_raw(run(gen, denoise))


def executions(url) -> float:
    prefix = f'modelserve_inference_exec_count_total{{model="{MODEL}",version="1"}} '
    line = next((l for l in httpx.get(f"{url}/metrics").text.splitlines() if l.startswith(prefix)), None)
    return float(line.split()[-1]) if line else 0.0


def test_samples_are_the_sampler_over_the_encoded_prompt(url):
    body = generate(url, prompt="a thick seven", num_samples=3, seed=4, steps=10, guidance=3.0).json()
    assert body["prompt"] == "a thick seven" and body["guidance"] == 3.0 and body["steps"] == 10
    assert np.allclose(body["samples"], expected(["a thick seven"] * 3, 4, 10, 3.0), atol=1e-3)


def test_the_config_gives_the_default_guidance_and_case_and_punctuation_are_not_words(url):
    body = generate(url, prompt="A thick, SEVEN!", seed=1, steps=5).json()
    assert body["guidance"] == 2.0  # default_guidance of the config
    assert np.allclose(body["samples"], expected(["a thick seven"], 1, 5, 2.0), atol=1e-3)


def test_one_prompt_per_sample_shares_one_encoding(url):
    prompts = ["a thick seven", "one", "", "a thick seven"]
    got = samples(url, prompt=prompts, num_samples=4, seed=2, steps=8)
    assert np.allclose(got, expected(prompts, 2, 8, 2.0), atol=1e-3)


def test_text_input_is_a_synonym_of_prompt(url):
    by_prompt = samples(url, prompt="thin one", num_samples=2, seed=9, steps=6)
    assert np.array_equal(samples(url, text_input="thin one", num_samples=2, seed=9, steps=6), by_prompt)


def test_an_empty_prompt_is_unconditional(url):
    omitted = generate(url, num_samples=2, seed=5, steps=6).json()
    empty = generate(url, prompt="", num_samples=2, seed=5, steps=6, guidance=4.0).json()
    assert omitted["samples"] == empty["samples"]
    assert "guidance" not in empty  # nothing to guide towards: the null caption alone
    assert np.allclose(empty["samples"], expected(["", ""], 5, 6, 0.0), atol=1e-3)


def test_words_outside_the_vocabulary_are_named_with_the_vocabulary(url):
    response = generate(url, prompt="a purple seven dancing purple")
    assert response.status_code == 400
    error = response.json()["error"]
    assert "'purple', 'dancing'" in error and "not in the vocabulary" in error
    assert "a, thick, thin, seven, one, leaning, right" in error
    assert "<pad>" not in error and "<null>" not in error  # the special tokens are not words


@pytest.mark.parametrize("params, message", [
    ({"prompt": "<null>"}, "not in the vocabulary"),
    ({"prompt": "a thick seven leaning right a one"}, "at most 6"),
    ({"prompt": "one", "text_input": "one"}, "not both"),
    ({"prompt": ["one", "a thick seven"], "num_samples": 3}, "one per sample (3)"),
    ({"prompt": 7}, "parameter 'prompt"),
    ({"prompt": "one", "label": 3}, "unknown parameter 'label'"),
    ({"prompt": "one", "steps": 101}, "max_steps of 100"),
    ({"prompt": "one", "guidance": -1}, "parameter 'guidance'"),
])
def test_bad_requests_are_400s_that_say_why(url, params, message):
    response = generate(url, **params)
    assert response.status_code == 400, response.text
    assert message in response.json()["error"]


def test_the_text_encoder_runs_once_per_request_and_guidance_shares_each_step(url):
    generate(url, prompt="one", seed=0, steps=2)  # warm
    before = executions(url)
    assert generate(url, prompt=["a thick seven", "one"], num_samples=2, seed=0, steps=7, guidance=2.5).status_code == 200
    assert executions(url) - before == 7 + 1  # one stacked (conditional + null) call per step, one encoding


def test_v2_infer_takes_the_prompt_as_a_bytes_tensor(url):
    client = triton.InferenceServerClient(url.removeprefix("http://"))
    inputs = []
    for name, datatype, value in [("prompt", "BYTES", np.array([b"a thick seven"], dtype=object)),
                                  ("num_samples", "INT32", np.array([2], np.int32)),
                                  ("seed", "INT64", np.array([4], np.int64)),
                                  ("steps", "INT32", np.array([10], np.int32)),
                                  ("guidance", "FP32", np.array([3.0], np.float32))]:
        tensor = triton.InferInput(name, list(value.shape), datatype)
        tensor.set_data_from_numpy(value)
        inputs.append(tensor)
    result = client.infer(MODEL, inputs)
    assert np.allclose(result.as_numpy("samples"), expected(["a thick seven"] * 2, 4, 10, 3.0), atol=1e-3)


def test_the_stream_shows_the_prompt_taking_shape_step_by_step(url):
    params = {"prompt": "a thick seven", "num_samples": 2, "seed": 4, "steps": 10, "guidance": 3.0, "every": 3}
    with httpx.stream("POST", f"{url}/v2/models/{MODEL}/generate_stream", json=params, timeout=60) as response:
        assert response.status_code == 200
        events = [json.loads(line[len("data: "):]) for line in response.iter_lines() if line.startswith("data: ")]
    assert [e["step"] for e in events[:-1]] == [3, 6, 9]
    assert events[-1]["event"] == "done" and events[-1]["prompt"] == "a thick seven"
    assert np.allclose(events[-1]["samples"], expected(["a thick seven"] * 2, 4, 10, 3.0), atol=1e-3)


def test_a_bad_prompt_fails_before_the_stream_starts(url):
    response = httpx.post(f"{url}/v2/models/{MODEL}/generate_stream", json={"prompt": "zebra"}, timeout=60)
    assert response.status_code == 400 and "'zebra'" in response.json()["error"]
