"""Write one version folder: config.yaml, card.json, loss.png and samples.png beside the graphs."""

import datetime
import json
import platform
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import torch
import yaml
from PIL import Image, ImageDraw

# Operator policy, model level: batch concurrent requests, with no queue delay (a batch takes
# what queued while the workers were busy, so a lone client never waits for company).
MODEL_DEFAULTS = {"max_batch_size": 64, "max_queue_delay_ms": 0}
COLORS = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189)]


def version_dir(root: Path, name: str, version: int | None) -> Path:
    """`root/name/version`, created; the next integer after the highest when version is None."""
    model_dir = root / name
    model_dir.mkdir(parents=True, exist_ok=True)
    if version is None:
        taken = [int(p.name) for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit()]
        version = max(taken, default=0) + 1
    if version < 1:
        raise ValueError(f"versions are positive integers, not {version}")
    path = model_dir / str(version)
    path.mkdir(exist_ok=True)
    return path


def write_configs(vdir: Path, config: dict) -> None:
    """The version's config.yaml, and the model's own config.yaml only if it has none yet."""
    (vdir / "config.yaml").write_text(_yaml(config), encoding="utf-8")
    model_config = vdir.parent / "config.yaml"
    if not model_config.exists():
        model_config.write_text(_yaml(MODEL_DEFAULTS), encoding="utf-8")


def _yaml(mapping: dict) -> str:
    return yaml.safe_dump(mapping, sort_keys=False, default_flow_style=None, width=100)


def card(vdir: Path, *, task: str, family: str, dataset: dict, metrics: dict, parity: dict,
         parameters: int, training_time_s: float, seed: int, hyperparameters: dict,
         quick: bool) -> dict:
    """Write card.json and return it. `parity` maps graph file -> export.parity() errors."""
    name, version = vdir.parent.name, int(vdir.name)
    body = {
        "name": name,
        "version": version,
        "task": task,
        "family": family,
        "dataset": dataset,
        "metrics": metrics,
        "parity": parity,
        "parameters": parameters,
        "training_time_s": round(training_time_s, 1),
        "seed": seed,
        "hyperparameters": hyperparameters,
        "quick": quick,
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__,
                     "numpy": np.__version__},
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": command(name, version, quick),
    }
    (vdir / "card.json").write_text(json.dumps(body, indent=1) + "\n", encoding="utf-8")
    return body


def command(name: str, version: int, quick: bool) -> str:
    """The command that trains this version again, from a checkout's root.

    Never sys.argv or the --output folder: a card is committed, and those hold the build
    machine's absolute paths (models/ is the default output).
    """
    return f"python -m training {name} --version {version}" + (" --quick" if quick else "")


def loss_png(path: Path, curves: dict[str, list[float]], x_label: str = "step",
             mark: tuple[int, str] | None = None) -> None:
    """Each curve smoothed by a moving average over 1% of its length, on shared axes.

    `mark` (index into the curves, label) draws a labelled vertical line: the kept checkpoint.
    """
    width, height, margin = 640, 360, 50
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    smooth = {k: _moving_average(np.asarray(v, dtype=np.float64)) for k, v in curves.items() if v}
    values = np.concatenate(list(smooth.values()))
    low, high = np.percentile(values, 0.5), np.percentile(values, 99.5)
    high = high if high > low else low + 1.0
    draw.rectangle([margin, 20, width - 20, height - margin], outline="black")
    for i, (label, ys) in enumerate(smooth.items()):
        xs = np.linspace(margin, width - 20, len(ys))
        ys_px = height - margin - (np.clip(ys, low, high) - low) / (high - low) * (height - margin - 20)
        draw.line(list(zip(xs.tolist(), ys_px.tolist())), fill=COLORS[i % len(COLORS)], width=2)
        draw.text((margin + 10, 25 + 14 * i), label, fill=COLORS[i % len(COLORS)])
    draw.text((5, 20), f"{high:.3g}", fill="black")
    draw.text((5, height - margin - 10), f"{low:.3g}", fill="black")
    n = max(len(v) for v in smooth.values())
    if mark is not None:
        index, label = mark
        length = max(len(v) for v in curves.values())
        x = margin + index / max(1, length - 1) * (width - 20 - margin)
        draw.line([(x, 20), (x, height - margin)], fill="gray", width=1)
        draw.text((x + 4, height - margin - 16), label, fill="black")
    draw.text((width // 2 - 20, height - margin + 15), f"{x_label} (0..{n})", fill="black")
    img.save(path)


def _moving_average(ys: np.ndarray) -> np.ndarray:
    window = max(1, len(ys) // 100)
    if window == 1:
        return ys
    kernel = np.ones(window) / window
    return np.convolve(ys, kernel, mode="valid")


def grid_png(path: Path, images: np.ndarray, raw_range, rows: int = 10, scale: int = 4) -> None:
    """images (N, H, W) in raw units, ink bright; drawn as a rows x (N / rows) grid."""
    n, h, w = images.shape
    cols = int(np.ceil(n / rows))
    low, high = raw_range
    pixels = np.clip((images - low) / (high - low), 0.0, 1.0) * 255.0  # (N, H, W)
    canvas = np.zeros((rows * (h + 1) + 1, cols * (w + 1) + 1), dtype=np.uint8) + 128
    for i in range(n):
        r, c = i % rows, i // rows
        canvas[1 + r * (h + 1):1 + r * (h + 1) + h, 1 + c * (w + 1):1 + c * (w + 1) + w] = pixels[i]
    img = Image.fromarray(canvas).resize((canvas.shape[1] * scale, canvas.shape[0] * scale),
                                         Image.NEAREST)
    img.save(path)


def scatter_png(path: Path, points: dict[str, np.ndarray], density: np.ndarray | None = None,
                extent=(-1.5, 2.5, -1.0, 1.5), size: int = 400) -> None:
    """2-D points (N, 2) per label over an optional density grid (H, W), y up."""
    x0, x1, y0, y1 = extent
    if density is None:
        img = Image.new("RGB", (size, size), "white")
    else:
        shade = (density - density.min()) / (np.ptp(density) + 1e-12)
        gray = (255 - 200 * shade[::-1]).astype(np.uint8)  # row 0 is the top (highest y)
        img = Image.fromarray(gray).resize((size, size), Image.BILINEAR).convert("RGB")
    draw = ImageDraw.Draw(img)
    for i, (label, pts) in enumerate(points.items()):
        px = (pts[:, 0] - x0) / (x1 - x0) * size
        py = size - (pts[:, 1] - y0) / (y1 - y0) * size
        for a, b in zip(px.tolist(), py.tolist()):
            draw.point((a, b), fill=COLORS[i % len(COLORS)])
        draw.text((10, 10 + 14 * i), label, fill=COLORS[i % len(COLORS)])
    img.save(path)
