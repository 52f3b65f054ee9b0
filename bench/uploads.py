"""Image inputs as people make them, classified through uploads to a real server.

    python bench/uploads.py [--model digits-cnn] [--count 360] [--json out.json]

The held-out test digits are drawn into photos 32-4000 px on a side: random margins and
position, an aspect-preserving scale, either polarity, paper and ink greys, blur, sensor noise,
and PNG or JPEG at a random quality. Each is POSTed as a multipart upload to :predict; the
accuracy is compared with the model's on the raw 8x8 arrays (issue 15: at least 95% of it).
Digits 0-9 typed in Pillow's bundled font at several sizes are reported too, with the guard's
verdicts where the model has a guard. Starts `python -m service` on 127.0.0.1 over models/.
"""

import argparse
import io
import math
import sys
import time
from pathlib import Path

import httpx
import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from servers import report, served  # bench/servers.py, beside this script

from training import data

SEED = 15
SIDES = (32, 4000)  # photo sides, drawn log-uniformly
FONT_SIZES = (24, 48, 96, 192)


def photo(digit: np.ndarray, rng: np.random.Generator) -> tuple[bytes, dict]:
    """One 8x8 digit (raw 0..16) as the bytes of a PNG or JPEG photo, and how it was made."""
    long_side = int(math.exp(rng.uniform(math.log(SIDES[0]), math.log(SIDES[1]))))
    aspect = rng.uniform(0.6, 1.6)
    w, h = long_side, max(SIDES[0], int(long_side / aspect))
    if aspect < 1:
        w, h = max(SIDES[0], int(long_side * aspect)), long_side
    share = rng.uniform(0.3, 0.9)  # of the shorter side the digit takes
    size = max(8, int(share * min(w, h)))
    resample = [Image.Resampling.NEAREST, Image.Resampling.BILINEAR, Image.Resampling.BICUBIC][rng.integers(3)]
    ink = np.asarray(Image.fromarray((digit / 16.0).astype(np.float32), mode="F").resize((size, size), resample))
    ink = np.clip(ink, 0.0, 1.0)
    canvas = np.zeros((h, w), np.float32)
    top, left = rng.integers(0, h - size + 1), rng.integers(0, w - size + 1)
    canvas[top: top + size, left: left + size] = ink
    dark = bool(rng.integers(2))
    paper, pen = (rng.uniform(0.7, 1.0), rng.uniform(0.0, 0.3)) if dark else (rng.uniform(0.0, 0.3), rng.uniform(0.7, 1.0))
    gray = paper + (pen - paper) * canvas
    blur = rng.uniform(0.0, 0.03) * size
    image = Image.fromarray(np.clip(gray * 255, 0, 255).astype(np.uint8))
    if blur > 0.3:
        image = image.filter(ImageFilter.GaussianBlur(blur))
    noise = rng.uniform(0.0, 0.08)
    noisy = np.asarray(image, np.float32) + rng.normal(0, noise * 255, (h, w)).astype(np.float32)
    image = Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))
    out = io.BytesIO()
    jpeg = bool(rng.integers(2))
    quality = int(rng.integers(30, 96))
    if jpeg:
        image.convert("RGB").save(out, format="JPEG", quality=quality)
    else:
        image.save(out, format="PNG", compress_level=1)
    how = {"w": w, "h": h, "digit_px": size, "dark_ink": dark, "blur_px": round(blur, 1),
           "noise": round(noise, 3), "format": f"JPEG q{quality}" if jpeg else "PNG"}
    return out.getvalue(), how


def typed(digit: str, font_size: int, stroke: int) -> bytes:
    """A digit typed in Pillow's bundled font (Aileron), dark on white, on a page twice its size."""
    font = ImageFont.load_default(size=font_size)
    page = Image.new("L", (font_size * 2, font_size * 2), 255)
    ImageDraw.Draw(page).text((font_size, font_size), digit, fill=0, font=font, anchor="mm",
                              stroke_width=stroke, stroke_fill=0)
    out = io.BytesIO()
    page.save(out, format="PNG")
    return out.getvalue()


def upload(client: httpx.Client, model: str, image: bytes) -> dict:
    response = client.post(f"/v1/models/{model}:predict", files={"file": ("photo", image, "application/octet-stream")})
    response.raise_for_status()
    return response.json()["predictions"][0]


def measure(url: str, model: str, count: int) -> dict:
    split = data.digits()
    x, y = split.x_test[:count], split.y_test[:count]
    rng = np.random.default_rng(SEED)
    with httpx.Client(base_url=url, timeout=120) as client:
        raw = client.post(f"/v1/models/{model}:predict", json={"instances": x.reshape(len(x), -1).tolist()})
        raw.raise_for_status()
        raw_predictions = raw.json()["predictions"]
        raw_accuracy = float(np.mean([int(p["label"]) == t for p, t in zip(raw_predictions, y)]))
        hits, flags, kinds, started = [], [], {}, time.perf_counter()
        for digit, label in zip(x, y):
            image, how = photo(digit[0], rng)
            prediction = upload(client, model, image)
            hit = int(prediction["label"]) == label
            hits.append(hit)
            flags.append(prediction.get("in_distribution") is False)
            for key in ("format", "dark_ink"):
                value = how[key] if key == "dark_ink" else how[key].split()[0]
                kinds.setdefault(f"{key}={value}", []).append(hit)
        seconds = time.perf_counter() - started
        typed_hits, typed_flags = {}, {}
        for font_size in FONT_SIZES:
            for stroke in (0, font_size // 24):
                for digit in "0123456789":
                    prediction = upload(client, model, typed(digit, font_size, stroke))
                    typed_hits.setdefault(font_size, []).append(prediction["label"] == digit)
                    typed_flags.setdefault(font_size, []).append(prediction.get("in_distribution") is False)
    upload_accuracy = float(np.mean(hits))
    return {
        "model": model,
        "test_digits": len(x),
        "raw_8x8_accuracy": raw_accuracy,
        "upload_accuracy": upload_accuracy,
        "upload_over_raw": upload_accuracy / raw_accuracy,
        "raw_flag_rate": float(np.mean([p.get("in_distribution") is False for p in raw_predictions])),
        "upload_flag_rate": float(np.mean(flags)),
        "upload_accuracy_by_kind": {k: round(float(np.mean(v)), 4) for k, v in sorted(kinds.items())},
        "upload_seconds_per_image": seconds / len(x),
        "typed_digits": {
            "font": "Pillow's bundled Aileron Regular (ImageFont.load_default), regular and bold",
            "accuracy_by_font_size": {str(k): float(np.mean(v)) for k, v in typed_hits.items()},
            "accuracy": float(np.mean([h for v in typed_hits.values() for h in v])),
            "flag_rate": float(np.mean([f for v in typed_flags.values() for f in v])),
        },
        "command": f"python bench/uploads.py --model {model} --count {count}",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="digits-cnn")
    parser.add_argument("--count", type=int, default=360, help="test digits to photograph (360: all)")
    parser.add_argument("--url", help="an already running server (default: start one over models/)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    with served(args.url) as url:
        result = measure(url, args.model, args.count)
    report(result, args.json)

if __name__ == "__main__":
    main()
