"""The translation task over a real server and the committed en-fr-numbers model: generate,
generate_stream, V2 infer (tritonclient), V1 :predict, and the 400s of bad input."""

import json
import shutil
from pathlib import Path

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
import yaml
from tritonclient.utils import InferenceServerException

ROOT = Path(__file__).resolve().parents[2]
MODEL = "en-fr-numbers"
TRAINED = ROOT / "models" / MODEL
KNOWN = {  # num2words' French, which the model reproduces
    "three hundred seventy-one thousand and ninety-eight": "trois cent soixante et onze mille quatre-vingt-dix-huit",
    "twelve": "douze",
    "nine hundred": "neuf cents",
    "eighty": "quatre-vingts",
    "eighty thousand": "quatre-vingt mille",
    "twenty-one": "vingt et un",
    "seven hundred and ninety-seven thousand, seven hundred and ninety-seven":
        "sept cent quatre-vingt-dix-sept mille sept cent quatre-vingt-dix-sept",
}

pytestmark = pytest.mark.skipif(not TRAINED.is_dir(), reason="models/en-fr-numbers is not trained")


@pytest.fixture(scope="module")
def url(module_server, tmp_path_factory) -> str:
    repo = tmp_path_factory.mktemp("translation") / "models"
    shutil.copytree(TRAINED, repo / MODEL)
    return module_server(repo)


def generate(url: str, text, **parameters) -> httpx.Response:
    return httpx.post(f"{url}/v2/models/{MODEL}/generate",
                      json={"text_input": text, "parameters": parameters}, timeout=60)


def stream(url: str, text, **parameters) -> list[dict]:
    events = []
    with httpx.stream("POST", f"{url}/v2/models/{MODEL}/generate_stream",
                      json={"text_input": text, "parameters": parameters}, timeout=60) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line[6:]))
    return events


@pytest.mark.parametrize(("english", "french"), KNOWN.items())
def test_generate_translates(url, english, french):
    response = generate(url, english)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["text_output"] == french
    assert body["finish_reason"] == "stop"
    assert body["model_name"] == MODEL and body["model_version"] == "1"


def test_greedy_is_deterministic_and_sampling_is_seeded(url):
    text = "six hundred and sixty-six thousand and seventy-one"
    assert len({generate(url, text).json()["text_output"] for _ in range(3)}) == 1
    hot = {"temperature": 3.0, "seed": 11}
    first, again = generate(url, text, **hot).json(), generate(url, text, **hot).json()
    assert first["text_output"] == again["text_output"] and first["seed"] == 11
    others = {generate(url, text, temperature=3.0, seed=s).json()["text_output"] for s in range(8)}
    assert len(others) > 1  # a hot temperature and other seeds give other samples


def test_beam_search_returns_the_best_beam_and_nbest(url):
    body = generate(url, "eighty-one", beam_width=4, nbest=3).json()
    assert body["text_output"] == "quatre-vingt-un"
    scores = [b["log_probability"] for b in body["nbest"]]
    assert len(scores) == 3 and scores == sorted(scores, reverse=True)
    assert body["nbest"][0]["text_output"] == body["text_output"]


def test_max_tokens_and_stop_end_the_output(url):
    body = generate(url, "ninety-nine", max_tokens=3).json()
    assert body["text_output"] == "quatre-vingt" and body["finish_reason"] == "length"
    body = generate(url, "ninety-nine", stop=["dix"]).json()
    assert body["text_output"] == "quatre-vingt-dix" and body["finish_reason"] == "stop"


def test_attention_has_a_row_per_token_over_the_source_words(url):
    body = generate(url, "forty-two thousand", attention=True).json()
    attention = body["attention"]
    assert attention["source_tokens"] == ["forty", "-", "two", "thousand"]
    assert attention["output_tokens"] == ["quarante", "-", "deux", "mille"]
    weights = np.array(attention["weights"])
    assert weights.shape == (4, 4)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, atol=1e-3)


def test_stream_sends_a_token_per_event_then_the_finish_reason(url):
    english = "three hundred seventy-one thousand and ninety-eight"
    events = stream(url, english, attention=True)
    tokens, done = events[:-1], events[-1]
    assert "".join(e["text_output"] for e in tokens) == KNOWN[english]
    assert [e["index"] for e in tokens] == list(range(len(tokens)))
    assert tokens[0]["source_tokens"][:3] == ["three", "hundred", "seventy"]
    assert all(len(e["attention"]) == len(tokens[0]["source_tokens"]) for e in tokens)
    assert done["event"] == "done" and done["finish_reason"] == "stop"
    assert done["output"] == KNOWN[english] and done["tokens"] == len(tokens)


def test_v2_infer_with_tritonclient_batches_of_strings(url):
    client = triton.InferenceServerClient(url.removeprefix("http://"))
    english = list(KNOWN)
    text = triton.InferInput("text_input", [len(english)], "BYTES")
    text.set_data_from_numpy(np.array([e.encode() for e in english], dtype=object))
    result = client.infer(MODEL, [text])
    assert [t.decode() for t in result.as_numpy("text_output")] == list(KNOWN.values())
    assert set(result.as_numpy("finish_reason").tolist()) == {b"stop"}
    metadata = client.get_model_metadata(MODEL)
    assert metadata["inputs"][0] == {"name": "text_input", "datatype": "BYTES", "shape": [-1]}


def test_v2_infer_takes_parameters_as_tensors(url):
    client = triton.InferenceServerClient(url.removeprefix("http://"))
    text = triton.InferInput("text_input", [1, 1], "BYTES")  # [N, 1], as LLM ensembles send
    text.set_data_from_numpy(np.array([[b"ninety-nine"]], dtype=object))
    limit = triton.InferInput("max_tokens", [1], "INT32")
    limit.set_data_from_numpy(np.array([1], dtype=np.int32))
    result = client.infer(MODEL, [text, limit])
    assert result.as_numpy("text_output").tolist() == [b"quatre"]
    assert result.as_numpy("finish_reason").tolist() == [b"length"]


def test_v1_predict_with_instances_of_strings(url):
    response = httpx.post(f"{url}/v1/models/{MODEL}:predict",
                          json={"instances": ["twelve", "nine hundred"]}, timeout=60)
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    assert [p["text_output"] for p in predictions] == ["douze", "neuf cents"]
    assert all(p["finish_reason"] == "stop" for p in predictions)


BAD = {
    "empty": ("", "empty"),
    "blank": ("   ", "empty"),
    "a number": (5, "valid string"),
    "a list": (["one"], "valid string"),
    "unknown words": ("twelve apples and pears", "'apples', 'pears' not in the vocabulary"),
    "french": ("douze", "'douze' not in the vocabulary"),
    "non-ascii": ("dóce", "ASCII"),
    "control character": ("one\x00two", "control character"),
    "too many tokens": (" ".join(["one"] * 15), "15 tokens; the most is 14"),
    "a megabyte": ("one " * 262_144, "at most 1000 characters"),
}


@pytest.mark.parametrize("case", BAD)
def test_bad_text_is_a_400_that_names_the_problem(url, case):
    text, message = BAD[case]
    response = generate(url, text)
    assert response.status_code == 400, response.text
    assert message in response.json()["error"]


@pytest.mark.parametrize("case", BAD)
def test_a_body_of_text_input_alone_is_checked_as_one_with_parameters(url, case):
    """{"text_input": ...} with no other key takes a path past pydantic: the same 400s."""
    text, message = BAD[case]
    bare = httpx.post(f"{url}/v2/models/{MODEL}/generate", json={"text_input": text}, timeout=60)
    assert bare.status_code == 400, bare.text
    assert bare.json()["error"] == generate(url, text).json()["error"]
    assert message in bare.json()["error"]


def test_a_body_of_text_input_alone_translates_as_with_default_parameters(url):
    for text in ("twelve", "four hundred thousand and one"):
        bare = httpx.post(f"{url}/v2/models/{MODEL}/generate", json={"text_input": text}, timeout=60)
        assert bare.status_code == 200
        assert bare.json() == generate(url, text).json()
    sampled = generate(url, "twelve", temperature=1.5, seed=1).json()  # a later request's own parameters
    assert sampled["seed"] == 1 and "seed" not in generate(url, "twelve").json()


def test_unknown_words_are_named_with_the_vocabulary(url):
    error = generate(url, "one zillion").json()["error"]
    assert "'zillion'" in error and "thousand" in error and "nineteen" in error


@pytest.mark.parametrize(("parameters", "message"), [
    ({"max_tokens": 21}, "over this model's max_output_tokens of 20"),
    ({"max_tokens": 0}, "max_tokens"),
    ({"beam_width": 9}, "over this model's max_beam_width of 8"),
    ({"beam_width": 2, "nbest": 3}, "nbest 3 is over beam_width 2"),
    ({"beam_width": 2, "temperature": 1.0}, "deterministic"),
    ({"temperature": -1}, "temperature"),
    ({"top_p": 0}, "top_p"),
    ({"stop": [""]}, "stop strings"),
    ({"typo": 1}, "unknown parameter"),
])
def test_bad_parameters_are_400s(url, parameters, message):
    response = generate(url, "twelve", **parameters)
    assert response.status_code == 400, response.text
    assert message in response.json()["error"]


def test_bad_strings_in_v2_and_v1_are_400s(url):
    client = triton.InferenceServerClient(url.removeprefix("http://"))
    text = triton.InferInput("text_input", [2], "BYTES")
    text.set_data_from_numpy(np.array([b"twelve", b"zwolf"], dtype=object))
    with pytest.raises(InferenceServerException, match=r"text_input\[1\]: 'zwolf' not in"):
        client.infer(MODEL, [text])
    text.set_data_from_numpy(np.array([b"twelve", b"\xff\xfe"], dtype=object))
    with pytest.raises(InferenceServerException, match="UTF-8"):
        client.infer(MODEL, [text])
    numbers = triton.InferInput("text_input", [1], "FP32")
    numbers.set_data_from_numpy(np.array([12.0], dtype=np.float32))
    with pytest.raises(InferenceServerException, match="BYTES"):
        client.infer(MODEL, [numbers])
    for body in ({"instances": []}, {"instances": [3]}, {"instances": ["one", "tw\u00e9lve"]}):
        response = httpx.post(f"{url}/v1/models/{MODEL}:predict", json=body, timeout=60)
        assert response.status_code == 400, (body, response.text)


def test_a_config_that_does_not_fit_its_graphs_fails_that_model_only(tmp_path, serve_repository):
    repo = tmp_path / "models"
    shutil.copytree(TRAINED, repo / MODEL)
    config_path = repo / MODEL / "1" / "config.yaml"
    config = yaml.safe_load(config_path.read_text())
    config["vocabulary"]["target"] = config["vocabulary"]["target"][:-1]
    config_path.write_text(yaml.safe_dump(config))
    url = serve_repository(repo)
    response = httpx.get(f"{url}/v2/models/{MODEL}")
    assert response.status_code == 503
    assert "target vocabulary has 30 tokens" in response.json()["error"]
