"""POST /v2/models/{name}/generate and V2 infer of generative models, on tiny models."""

import base64
import io

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from PIL import Image

from service.protocol.task_schemas import DIGIT
from tests.tasks import builders


@pytest.fixture(scope="module")
def url(tmp_path_factory, module_server):
    return module_server(builders.task_repository(tmp_path_factory.mktemp("repo")))


def generate(url, model, **params) -> httpx.Response:
    return httpx.post(f"{url}/v2/models/{model}/generate", json=params, timeout=60)


def samples(url, model, **params) -> np.ndarray:
    response = generate(url, model, **params)
    assert response.status_code == 200, response.text
    return np.array(response.json()["samples"])


def metric(url, name, model) -> float:
    """The series summed over its other labels (the request series have a `protocol` label)."""
    lines = httpx.get(f"{url}/metrics").text.splitlines()
    wanted = (f'model="{model}"', 'version="1"')
    return sum(float(l.split()[-1]) for l in lines if l.startswith(name + "{") and all(w in l for w in wanted))


def png_pixels(text: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(text))))


# ------------------------------------------------------------------------ latent models


def test_gan_samples_are_the_generator_of_seeded_latents(url):
    body = generate(url, "gan", num_samples=3, seed=11, temperature=0.5).json()
    z = 0.5 * np.random.Generator(np.random.PCG64(11)).standard_normal((3, builders.LATENT))
    expected = builders.to_raw(np.tanh(z @ builders.DECODER_G)).reshape(3, 1, 8, 8)
    assert body["model_name"] == "gan" and body["seed"] == 11 and body["temperature"] == 0.5
    assert np.allclose(body["samples"], expected, atol=1e-3)


def test_same_seed_same_samples_other_seed_other_samples(url):
    for model in ("gan", "vae", "flow", "diffusion"):
        first, again = samples(url, model, num_samples=2, seed=5), samples(url, model, num_samples=2, seed=5)
        other = samples(url, model, num_samples=2, seed=6)
        assert np.array_equal(first, again), model
        assert not np.allclose(first, other), model


def test_without_a_seed_the_response_gives_the_one_drawn(url):
    body = generate(url, "gan", num_samples=2).json()
    assert np.array_equal(samples(url, "gan", num_samples=2, seed=body["seed"]), body["samples"])


def test_flow_samples_are_the_inverse_of_seeded_latents(url):
    z = np.random.Generator(np.random.PCG64(3)).standard_normal((4, 2))
    assert np.allclose(samples(url, "flow", num_samples=4, seed=3), 2 * z + 1, atol=1e-5)


def test_vae_interpolates_between_two_instances_latents(url):
    mirror = [DIGIT[r * 8 + 7 - c] for r in range(8) for c in range(8)]
    path = samples(url, "vae", num_samples=5, interpolate=[DIGIT, mirror])
    ends = [httpx.post(f"{url}/v1/models/vae:reconstruct", json={"instances": [x]}).json()["predictions"][0]["reconstruction"]
            for x in (DIGIT, mirror)]
    assert path.shape == (5, 1, 8, 8)
    assert np.allclose(path[0], ends[0], atol=1e-4) and np.allclose(path[-1], ends[1], atol=1e-4)


# ------------------------------------------------------------------------ formats


def test_png_format_gives_a_png_per_sample_and_a_grid(url):
    body = generate(url, "gan", num_samples=5, seed=2, format="png").json()
    arrays = samples(url, "gan", num_samples=5, seed=2)
    assert len(body["samples"]) == 5
    for text, array in zip(body["samples"], arrays):
        assert np.abs(png_pixels(text) - array[0] / 16 * 255).max() <= 1  # ink bright, 0..255
    grid = png_pixels(body["grid"])
    assert grid.shape == ((2 * 9 + 1) * 4, (3 * 9 + 1) * 4)  # 2 rows of 3 cells of 8 px plus lines, scaled x4


def test_accept_image_png_returns_the_grid_itself(url):
    response = httpx.post(f"{url}/v2/models/diffusion/generate", json={"num_samples": 4, "seed": 1, "steps": 5},
                          headers={"Accept": "image/png"})
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    as_json = generate(url, "diffusion", num_samples=4, seed=1, steps=5, format="png").json()
    assert response.content == base64.b64decode(as_json["grid"])
    refused = httpx.post(f"{url}/v2/models/gan/generate", json={"format": "array"}, headers={"Accept": "image/png"})
    assert refused.status_code == 400


# ------------------------------------------------------------------------ diffusion


@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
def test_diffusion_steps_run_one_denoiser_call_each_for_the_whole_batch(url, sampler):
    for steps in (10, 50):
        before = metric(url, "modelserve_inference_exec_count_total", "diffusion")
        body = generate(url, "diffusion", num_samples=3, seed=0, steps=steps, sampler=sampler, label=[1, 2, 3],
                        guidance=2.0).json()
        assert np.array(body["samples"]).shape == (3, 1, 8, 8)
        assert (body["steps"], body["sampler"], body["labels"]) == (steps, sampler, ["1", "2", "3"])
        assert metric(url, "modelserve_inference_exec_count_total", "diffusion") - before == steps


def test_diffusion_defaults_come_from_the_config(url):
    body = generate(url, "diffusion", seed=0).json()
    assert body["steps"] == 20 and body["sampler"] == "ddpm" and "labels" not in body
    assert np.array(body["samples"]).shape == (1, 1, 8, 8)


def test_diffusion_labels_by_index_or_name_and_guidance_change_samples(url):
    by_index = samples(url, "diffusion", num_samples=2, seed=4, steps=10, label=3)
    by_name = samples(url, "diffusion", num_samples=2, seed=4, steps=10, label="3")
    other = samples(url, "diffusion", num_samples=2, seed=4, steps=10, label=7)
    guided = samples(url, "diffusion", num_samples=2, seed=4, steps=10, label=3, guidance=3.0)
    assert np.array_equal(by_index, by_name)
    assert not np.allclose(by_index, other) and not np.allclose(by_index, guided)


def test_ddim_with_eta_zero_is_deterministic_in_its_noise_only(url):
    a = samples(url, "diffusion", seed=1, steps=10, sampler="ddim")
    b = samples(url, "diffusion", seed=1, steps=10, sampler="ddim", eta=0.0)
    noisy = samples(url, "diffusion", seed=1, steps=10, sampler="ddim", eta=1.0)
    assert np.array_equal(a, b) and not np.allclose(a, noisy)


# ------------------------------------------------------------------------ V2 signature


def test_metadata_shows_the_generation_signature_and_tritonclient_generates(url):
    client = triton.InferenceServerClient(url.removeprefix("http://"))
    metadata = client.get_model_metadata("diffusion")
    assert [i["name"] for i in metadata["inputs"]] == ["num_samples", "seed", "steps", "sampler", "eta", "label", "guidance"]
    assert metadata["outputs"][0] == {"name": "samples", "datatype": "FP32", "shape": [-1, 1, 8, 8]}

    def tensor(name, value, datatype):
        array = np.array(value, dtype=object if datatype == "BYTES" else triton.triton_to_np_dtype(datatype))
        t = triton.InferInput(name, list(array.shape), datatype)
        t.set_data_from_numpy(array)
        return t

    result = client.infer("diffusion", [
        tensor("num_samples", [2], "INT32"), tensor("seed", [9], "INT64"), tensor("steps", [10], "INT32"),
        tensor("sampler", [b"ddim"], "BYTES"), tensor("label", [4, 5], "INT32"),
    ])
    expected = samples(url, "diffusion", num_samples=2, seed=9, steps=10, sampler="ddim", label=[4, 5])
    assert np.array_equal(result.as_numpy("samples"), expected.astype(np.float32))
    assert result.as_numpy("seed").tolist() == [9]
    gan = client.infer("gan", [tensor("num_samples", [3], "INT32")])  # every input optional
    assert gan.as_numpy("samples").shape == (3, 1, 8, 8)
    client.close()


def test_a_client_that_fills_only_the_required_inputs_generates(tmp_path, serve_repository):
    # Generic V2 tools fill what the metadata marks required; filling every input gave
    # "temperature does not apply to interpolate" and the like.
    repo = builders.task_repository(tmp_path / "repo")
    builders.write(repo, "classes", {"task": "diffusion", "data": builders.digits_data(), "labels": builders.LABELS,
                                     "schedule": {"betas": builders.betas(10)}}, {"denoiser.onnx": builders.denoiser()})
    url = serve_repository(repo)
    client = triton.InferenceServerClient(url.removeprefix("http://"))
    try:
        for model, required in [("gan", []), ("vae", []), ("flow", []), ("diffusion", []), ("classes", ["label"])]:
            metadata, config = client.get_model_metadata(model), client.get_model_config(model)
            optional = {i["name"] for i in metadata["inputs"] if i.get("parameters", {}).get("optional")}
            assert [i["name"] for i in metadata["inputs"] if i["name"] not in optional] == required, model
            assert {i["name"] for i in config["input"] if i["optional"]} == optional, model
            inputs = []
            for spec in metadata["inputs"]:
                if spec["name"] in optional:
                    continue
                tensor = triton.InferInput(spec["name"], [1], spec["datatype"])
                tensor.set_data_from_numpy(np.zeros(1, triton.triton_to_np_dtype(spec["datatype"])))
                inputs.append(tensor)
            result = client.infer(model, inputs)
            assert result.as_numpy("samples").shape[0] == 1, model
        assert "parameters" not in client.get_model_metadata("classifier")["inputs"][0]
        assert client.get_model_config("classifier")["input"][0]["optional"] is False
    finally:
        client.close()


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/octet-stream"])
def test_bodies_are_json_whatever_their_content_type_and_empty_is_all_defaults(url, content_type):
    headers = {"content-type": content_type} if content_type else {}
    response = httpx.post(f"{url}/v2/models/gan/generate", content=b'{"num_samples": 2}', headers=headers)
    assert response.status_code == 200 and len(response.json()["samples"]) == 2
    empty = httpx.post(f"{url}/v2/models/gan/generate", content=b"", headers=headers)
    assert empty.status_code == 200 and len(empty.json()["samples"]) == 1 and empty.json()["temperature"] == 1.0
    no_inputs = httpx.post(f"{url}/v2/models/gan/infer", content=b"", headers=headers)
    assert no_inputs.status_code == 400 and "'inputs' must be a list" in no_inputs.json()["error"]


def test_generations_count_their_samples_in_metrics(url):
    before = metric(url, "modelserve_inference_count_total", "flow")
    generate(url, "flow", num_samples=7)
    assert metric(url, "modelserve_inference_count_total", "flow") == before + 7


# ------------------------------------------------------------------------ errors


@pytest.mark.parametrize(("model", "params", "status", "names"), [
    ("gan", {"num_samples": 17}, 400, "max_samples of 16"),
    ("gan", {"num_samples": 0}, 400, "num_samples"),
    ("gan", {"num_samples": "4"}, 400, "num_samples"),
    ("gan", {"seed": -1}, 400, "seed"),
    ("gan", {"steps": 10}, 400, "unknown parameter 'steps'"),
    ("gan", {"format": "gif"}, 400, "format"),
    ("flow", {"format": "png"}, 400, "data.image"),
    ("vae", {"interpolate": [DIGIT]}, 400, "interpolate"),
    ("vae", {"interpolate": [DIGIT, [1, 2]]}, 400, "interpolate[1]"),
    ("vae", {"interpolate": [DIGIT, DIGIT], "temperature": 2.0}, 400, "temperature"),
    ("diffusion", {"steps": 101}, 400, "max_steps of 100"),
    ("diffusion", {"label": 10}, 400, "label 10"),
    ("diffusion", {"label": "ten"}, 400, "'ten'"),
    ("diffusion", {"label": [1, 2], "num_samples": 3}, 400, "one per sample"),
    ("diffusion", {"label": True}, 400, "label"),
    ("diffusion", {"sampler": "euler"}, 400, "sampler"),
    ("diffusion", {"eta": 0.5}, 400, "ddim"),
    ("diffusion", {"guidance": 2.0}, 400, "guidance needs a label"),
    ("diffusion", {"every": 2}, 400, "unknown parameter 'every'"),
    ("classifier", {}, 400, "classification model"),
    ("regressor", {"num_samples": 1}, 400, "regression model"),
    ("missing", {}, 404, "missing"),
])
def test_errors_name_the_problem(url, model, params, status, names):
    response = generate(url, model, **params)
    assert response.status_code == status
    assert names in response.json()["error"]
