"""Images as people make them, uploaded to the trained digits-cnn (guarded by digits-flow)."""

import io

import httpx
import numpy as np
import pytest
from PIL import Image, ImageDraw

from service import imaging
from tests.tasks.test_trained import MODELS, held_out, need


@pytest.fixture(scope="module")
def url(module_server, tmp_path_factory):
    need("digits-cnn", "digits-flow")
    repo = tmp_path_factory.mktemp("uploads")
    for name in ("digits-cnn", "digits-flow"):
        (repo / name).symlink_to((MODELS / name).resolve(), target_is_directory=True)
    return module_server(repo)


def encode(image: Image.Image, fmt: str = "PNG", **options) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **options)
    return out.getvalue()


def page(digit: np.ndarray, size=(1600, 1200), box=(900, 150, 1500, 750)) -> Image.Image:
    """A held-out digit drawn dark on white paper, off-centre on a large page."""
    ink = Image.fromarray((digit / 16 * 255).astype(np.uint8)).resize((box[2] - box[0], box[3] - box[1]), Image.BICUBIC)
    paper = Image.new("L", size, 245)
    paper.paste(Image.new("L", ink.size, 20), box[:2], mask=ink)
    return paper


def upload(url, *images: bytes) -> httpx.Response:
    files = [("file", (f"{i}.jpg", image, "application/octet-stream")) for i, image in enumerate(images)]
    return httpx.post(f"{url}/v1/models/digits-cnn:predict", files=files, timeout=60)


def test_large_off_centre_dark_ink_jpeg_photos_are_read_as_their_digits(url):
    digits, truth, _ = held_out()
    images = [encode(page(d).convert("RGB"), "JPEG", quality=70) for d in digits[:10]]
    predictions = upload(url, *images).json()["predictions"]
    got = [p["label"] for p in predictions]
    assert sum(g == str(t) for g, t in zip(got, truth[:10])) >= 9, got
    assert all(p["in_distribution"] for p in predictions)


def test_a_scribble_is_answered_but_flagged(url):
    scribble = Image.new("L", (400, 400), 255)
    ImageDraw.Draw(scribble).line([(40, 300), (360, 60), (80, 80), (330, 350)], fill=0, width=30)
    (prediction,) = upload(url, encode(scribble)).json()["predictions"]
    assert prediction["in_distribution"] is False and "label" in prediction


@pytest.mark.parametrize("image, problem", [
    (encode(Image.new("L", (200, 200), 255)), "has no ink"),
    (encode(Image.new("L", (1, 1), 0)), "at least 8 on each side"),
    (encode(Image.new("L", (7, 40), 0)), "at least 8 on each side"),
])
def test_blank_and_tiny_images_are_400s_that_say_why(url, image, problem):
    response = upload(url, image)
    assert response.status_code == 400 and problem in response.json()["error"]


def test_the_request_pixel_limit_is_named(url):
    side = int(np.sqrt(imaging.MAX_PIXELS))
    canvas = Image.new("L", (side, side), 255)
    ImageDraw.Draw(canvas).line([(1000, 500), (1000, 3500)], fill=0, width=300)  # a "1"
    big = encode(canvas, compress_level=9)  # a small file of many pixels
    count = imaging.MAX_REQUEST_PIXELS // imaging.MAX_PIXELS + 1
    response = upload(url, *[big] * count)
    assert response.status_code == 400 and "MAX_REQUEST_PIXELS" in response.json()["error"]
