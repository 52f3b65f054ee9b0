"""KServe V1 :predict and :reconstruct on tiny models of each task, against a real server."""

import base64
import io
import math

import httpx
import numpy as np
import pytest
from PIL import Image

from service.protocol.task_schemas import DIGIT, PATIENT
from tests.tasks import builders

RAW = np.array(DIGIT, dtype=np.float64)  # a digit, pixels 0..16 (max 15: images get stretched)


@pytest.fixture(scope="module")
def url(tmp_path_factory, module_server):
    return module_server(builders.task_repository(tmp_path_factory.mktemp("repo")))


def post(url, path, body=None, **kwargs) -> httpx.Response:
    return httpx.post(f"{url}{path}", json=body, timeout=30, **kwargs)


def expected_probabilities(raw: np.ndarray) -> np.ndarray:
    logits = builders.to_network(raw.reshape(-1, 64)) @ builders.CLASSIFIER_W + builders.CLASSIFIER_B
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def png_bytes(pixels: np.ndarray, mode: str = "L") -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8)).convert(mode).save(out, format="PNG")
    return out.getvalue()


# ------------------------------------------------------------------------ classification


def test_classifier_answers_label_probabilities_and_top_k(url):
    response = post(url, "/v1/models/classifier:predict", {"instances": [DIGIT, [0] * 64], "top_k": 2})
    assert response.status_code == 200
    predictions = response.json()["predictions"]
    for prediction, p in zip(predictions, expected_probabilities(np.array([DIGIT, [0] * 64], float))):
        best = int(np.argmax(p))
        assert prediction["label"] == builders.LABELS[best]
        assert prediction["probability"] == pytest.approx(p[best], rel=1e-5)
        assert list(prediction["probabilities"]) == builders.LABELS
        assert sum(prediction["probabilities"].values()) == pytest.approx(1.0)
        assert [k["label"] for k in prediction["top_k"]] == [builders.LABELS[i] for i in np.argsort(-p)[:2]]


def test_nested_8x8_and_flat_instances_agree(url):
    nested = [DIGIT[r * 8:(r + 1) * 8] for r in range(8)]
    flat, rows, full = (post(url, "/v1/models/classifier:predict", {"instances": [x]}).json()["predictions"][0]
                        for x in (DIGIT, nested, [nested]))
    assert flat == rows == full
    assert len(flat["top_k"]) == 3  # the default


def test_images_as_base64_and_uploads_of_any_size_give_the_digit(url):
    ink = RAW.reshape(8, 8) / RAW.max()  # what the service makes of the image: ink stretched to 0..1
    expected = expected_probabilities(ink * 16.0)[0]
    paper = 255 - ink * 255  # dark ink on white paper, as people write
    images = {
        "8x8": png_bytes(paper),
        "28x28": png_bytes(np.asarray(Image.fromarray(paper.astype(np.uint8)).resize((28, 28), Image.NEAREST))),
        "200x200 rgb": png_bytes(np.kron(paper, np.ones((25, 25))), mode="RGB"),
    }
    for size, image in images.items():
        as_b64 = post(url, "/v1/models/classifier:predict",
                      {"instances": [{"image_b64": base64.b64encode(image).decode()}]}).json()
        upload = httpx.post(f"{url}/v1/models/classifier:predict", files={"file": ("digit.png", image, "image/png")},
                            data={"top_k": "10"})
        assert upload.status_code == 200, upload.text
        for prediction in (as_b64["predictions"][0], upload.json()["predictions"][0]):
            got = np.array(list(prediction["probabilities"].values()))
            tolerance = 1e-5 if size != "28x28" else 0.05  # 28 is not a multiple of 8: pixels blend
            assert np.abs(got - expected).max() < tolerance, size
        assert len(upload.json()["predictions"][0]["top_k"]) == 10


def test_several_uploads_are_several_instances(url):
    image = png_bytes(255 - RAW.reshape(8, 8) / 16 * 255)
    files = [("file", ("a.png", image, "image/png")), ("file", ("b.png", image, "image/png"))]
    response = httpx.post(f"{url}/v1/models/classifier:predict", files=files)
    assert len(response.json()["predictions"]) == 2


def test_version_path_works_and_counts_in_metrics(url):
    def successes():
        text = httpx.get(f"{url}/metrics").text
        line = next((l for l in text.splitlines()
                     if l.startswith('modelserve_inference_request_success_total{model="classifier"')), None)
        return 0.0 if line is None else float(line.rsplit(" ", 1)[1])  # no series yet: no success yet

    before = successes()
    response = post(url, "/v1/models/classifier/versions/1:predict", {"instances": [DIGIT]})
    assert response.status_code == 200
    assert successes() == before + 1
    assert post(url, "/v1/models/classifier/versions/7:predict", {"instances": [DIGIT]}).status_code == 404


# ------------------------------------------------------------------------ regression


def test_regressor_takes_named_features_or_an_array(url):
    expected = np.array(list(PATIENT.values())) @ builders.REGRESSOR_W[:, 0] + 10.0
    by_name = post(url, "/v1/models/regressor:predict", {"instances": [PATIENT]}).json()["predictions"]
    as_array = post(url, "/v1/models/regressor:predict", {"instances": [list(PATIENT.values())]}).json()["predictions"]
    assert by_name == as_array
    assert by_name[0]["value"] == pytest.approx(expected, rel=1e-5)
    assert by_name[0]["std"] == pytest.approx(2.0)


def test_regressor_without_variance_gives_no_std(url):
    predictions = post(url, "/v1/models/regressor-mean:predict", {"instances": [[1] * 10, [0] * 10]}).json()["predictions"]
    assert predictions == [{"value": pytest.approx(15.5)}, {"value": pytest.approx(10.0)}]


# ------------------------------------------------------------------------ flow and vae


def test_flow_log_density_is_exact(url):
    points = np.array([[1.0, 1.0], [3.0, -1.0]])
    predictions = post(url, "/v1/models/flow:predict", {"instances": points.tolist()}).json()["predictions"]
    z = (points - 1.0) / 2.0
    log_p = -0.5 * (z**2).sum(1) - math.log(2 * math.pi) - 2 * math.log(2)
    assert [p["log_density"] for p in predictions] == pytest.approx(log_p, rel=1e-5)
    assert [p["bits_per_dim"] for p in predictions] == pytest.approx(-log_p / (2 * math.log(2)), rel=1e-5)


def test_a_log_density_of_minus_infinity_arrives_as_minus_infinity(tmp_path, serve_repository):
    # orjson wrote it as null, which a client cannot tell from NaN or +inf.
    builders.write(tmp_path, "singular", {"task": "flow", "data": {"shape": [2]}},
                   {"forward.onnx": builders.flow_forward_singular(), "inverse.onnx": builders.flow_inverse()})
    url = serve_repository(tmp_path)
    response = post(url, "/v1/models/singular:predict", {"instances": [[0.0, 1.0], [1.0, 0.0]]})
    assert response.status_code == 200
    assert '"log_density":-Infinity,"bits_per_dim":Infinity' in response.text
    singular, regular = response.json()["predictions"]  # httpx reads it with Python's json
    assert singular == {"log_density": -math.inf, "bits_per_dim": math.inf}
    assert regular["log_density"] == pytest.approx(-0.5 - math.log(2 * math.pi))


def test_vae_predict_gives_latent_mean_and_log_var(url):
    (prediction,) = post(url, "/v1/models/vae:predict", {"instances": [DIGIT]}).json()["predictions"]
    mean = builders.to_network(RAW) @ builders.ENCODER_E
    assert prediction["mean"] == pytest.approx(mean.tolist(), rel=1e-4, abs=1e-5)
    assert prediction["log_var"] == [-1.0] * builders.LATENT


def test_vae_reconstruct_decodes_the_mean_as_array_or_png(url):
    mean = builders.to_network(RAW) @ builders.ENCODER_E
    expected = builders.to_raw(np.tanh(mean @ builders.DECODER_G)).reshape(1, 8, 8)
    (array,) = post(url, "/v1/models/vae:reconstruct", {"instances": [DIGIT]}).json()["predictions"]
    assert np.allclose(array["reconstruction"], expected, atol=1e-3)
    (image,) = post(url, "/v1/models/vae:reconstruct", {"instances": [DIGIT], "format": "png"}).json()["predictions"]
    pixels = np.asarray(Image.open(io.BytesIO(base64.b64decode(image["reconstruction"]))))
    assert pixels.shape == (8, 8)
    assert np.abs(pixels - expected[0] / 16 * 255).max() <= 1


# ------------------------------------------------------------------------ errors


@pytest.mark.parametrize(("path", "body", "status", "names"), [
    ("/v1/models/classifier:predict", {"instances": [[1, 2]]}, 400, "[1, 8, 8]"),
    ("/v1/models/classifier:predict", {"instances": [DIGIT], "topk": 2}, 400, "'topk'"),
    ("/v1/models/classifier:predict", {"instances": [DIGIT], "top_k": "2"}, 400, "top_k"),
    ("/v1/models/classifier:predict", {"instances": [DIGIT], "top_k": 11}, 400, "top_k"),
    ("/v1/models/classifier:predict", {"instances": []}, 400, "instances"),
    ("/v1/models/classifier:predict", {"instances": [["a"] * 64]}, 400, "numbers"),
    ("/v1/models/classifier:predict", {"instances": [[1e39] * 64]}, 400, "float32's range"),
    ("/v1/models/classifier:predict", {"instances": [{"image_b64": "bm90IGFuIGltYWdl"}]}, 400, "not a PNG or JPEG"),
    ("/v1/models/classifier:predict", {"instances": [{"image_b64": "%%%"}]}, 400, "base64"),
    ("/v1/models/regressor:predict", {"instances": [{**PATIENT, "weight": 80}]}, 400, "'weight'"),
    ("/v1/models/regressor:predict", {"instances": [{"image_b64": "aGk="}]}, 400, "does not take images"),
    ("/v1/models/gan:predict", {"instances": [DIGIT]}, 400, "gan model"),
    ("/v1/models/classifier:reconstruct", {"instances": [DIGIT]}, 400, "classification model"),
    ("/v1/models/missing:predict", {"instances": [DIGIT]}, 404, "missing"),
])
def test_errors_name_the_problem(url, path, body, status, names):
    response = post(url, path, body)
    assert response.status_code == status
    assert names in response.json()["error"]


def test_every_missing_feature_is_named(url):
    patient = {k: v for k, v in PATIENT.items() if k not in ("bmi", "s5")}
    response = post(url, "/v1/models/regressor:predict", {"instances": [{**patient, "weight": 80, "height": 1.8}]})
    assert response.status_code == 400
    assert response.json()["error"].startswith(
        "instances[0]: unknown features 'weight', 'height'; missing features 'bmi', 's5'; the features are: age, sex")


def test_a_form_upload_to_v2_infer_is_pointed_at_predict(url):
    response = httpx.post(f"{url}/v2/models/classifier/infer", files={"file": ("seven.png", png_bytes(RAW * 15), "image/png")})
    assert response.status_code == 400
    error = response.json()["error"]
    assert "takes a V2 inference request" in error and "POST /v1/models/classifier:predict" in error


@pytest.mark.parametrize("path, meant", [
    ("/v1/models/classifier/predict", "/v1/models/classifier:predict"),
    ("/v1/models/classifier/versions/1/predict", "/v1/models/classifier/versions/1:predict"),
    ("/v1/models/vae/reconstruct", "/v1/models/vae:reconstruct"),
])
def test_a_slash_for_the_colon_is_a_404_that_says_so(url, path, meant):
    response = post(url, path, {"instances": [DIGIT]})
    assert response.status_code == 404 and f"POST {meant}" in response.json()["error"]
    assert httpx.get(f"{url}{path}").status_code == 404


def test_bodies_that_are_not_json_objects_are_400s(url):
    for content in (b'{"instances": [[NaN]]}', b"[1, 2]", b"instances=1"):
        response = httpx.post(f"{url}/v1/models/classifier:predict", content=content)
        assert response.status_code == 400 and response.json()["error"]


def test_an_upload_that_is_not_an_image_is_a_400(url):
    response = httpx.post(f"{url}/v1/models/classifier:predict", files={"file": ("x.png", b"GIF89a...", "image/png")})
    assert response.status_code == 400 and "not a PNG or JPEG" in response.json()["error"]
    empty_form = httpx.post(f"{url}/v1/models/classifier:predict", data={"top_k": "2"},
                            files={"other": ("", b"", "application/octet-stream")})
    assert empty_form.status_code == 400


def test_ink_on_dark_transparent_and_jpeg_images_read_alike(url):
    ink = RAW.reshape(8, 8) / RAW.max()
    big = np.kron(ink, np.ones((16, 16)))  # 128x128
    rgba = np.zeros((128, 128, 4), np.uint8)
    rgba[..., 3] = (big * 255).astype(np.uint8)  # black ink whose alpha is the stroke, on nothing
    jpeg = io.BytesIO()
    Image.fromarray((255 - big * 255).astype(np.uint8)).save(jpeg, format="JPEG", quality=95)
    images = [png_bytes(big * 255), png_bytes(255 - big * 255), png_bytes(rgba, mode="RGBA"), jpeg.getvalue()]
    files = [("file", (f"{i}", image, "application/octet-stream")) for i, image in enumerate(images)]
    predictions = httpx.post(f"{url}/v1/models/classifier:predict", files=files).json()["predictions"]
    expected = expected_probabilities(ink * 16.0)[0]
    for prediction in predictions:
        assert np.abs(np.array(list(prediction["probabilities"].values())) - expected).max() < 0.02


def test_labels_that_do_not_match_the_logits_keep_the_model_unavailable_with_the_reason(tmp_path, serve_repository):
    builders.write(tmp_path, "classifier", {"task": "classification", "labels": ["a", "b", "c"],
                                            "data": builders.digits_data()}, {"model.onnx": builders.classifier()})
    builders.write(tmp_path, "nodes", {"task": "node-classification", "labels": ["a", "b"]},
                   {"model.onnx": builders.node_classifier()})
    builders.write(tmp_path, "unlabelled", {"task": "node-classification"}, {"model.onnx": builders.node_classifier()})
    url = serve_repository(tmp_path)
    rows = {row["name"]: row for row in httpx.post(f"{url}/v2/repository/index", json={}).json()}
    assert {row["state"] for row in rows.values()} == {"UNAVAILABLE"}
    assert "the graph gives 10 logits but config.yaml lists 3 labels" in rows["classifier"]["reason"]
    assert "the graph gives 3 logits but config.yaml lists 2 labels" in rows["nodes"]["reason"]
    assert "a node-classification model needs labels in config.yaml" in rows["unlabelled"]["reason"]
