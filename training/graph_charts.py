"""depth.png: test accuracy and the oversmoothing measures against depth, plain and residual."""

import math
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from training import graphs

PANEL_W, PANEL_H, MARGIN = 300, 260, 44
SERIES = {"plain": (214, 39, 40), "residual": (31, 119, 180)}
# (metric, title, low, high, log scale): energy spans decades, so it is drawn on a log axis.
PANELS = [
    ("test_accuracy", "test accuracy (held-out graphs)", 0.0, 1.0, False),
    ("cosine_similarity", "mean pairwise cosine similarity", 0.0, 1.0, False),
    ("dirichlet_energy", "relative Dirichlet energy (log)", 1e-4, 1.0, True),
]


def depth_png(path: Path, table: dict, served: str) -> None:
    """table: {"plain"|"residual": {depth: metrics}} as in the card; one panel per measure."""
    img = Image.new("RGB", (PANEL_W * len(PANELS), PANEL_H + 40), "white")
    draw = ImageDraw.Draw(img)
    draw.font = ImageFont.load_default(size=12)  # Pillow's own scalable font: no system fonts needed
    for i, (key, title, low, high, log) in enumerate(PANELS):
        _panel(draw, i * PANEL_W, table, key, title, low, high, log)
    x = 10
    for name, colour in SERIES.items():
        draw.line([(x, PANEL_H + 22), (x + 20, PANEL_H + 22)], fill=colour, width=3)
        draw.text((x + 25, PANEL_H + 16), f"{name} GCN", fill=colour)
        x += 120
    draw.text((x, PANEL_H + 16), f"this model: {served}; dashed: 1 / {graphs.CLASSES} classes",
              fill="black")
    img.save(path)


def _panel(draw: ImageDraw.ImageDraw, left: int, table: dict, key: str, title: str,
           low: float, high: float, log: bool) -> None:
    x0, x1, y0, y1 = left + MARGIN, left + PANEL_W - 12, 24, PANEL_H - 24
    draw.rectangle([x0, y0, x1, y1], outline="black")
    draw.text((x0, 6), title, fill="black")
    scale = (lambda v: math.log10(max(v, low))) if log else (lambda v: v)

    def y_of(v: float) -> float:
        t = (scale(v) - scale(low)) / (scale(high) - scale(low))
        return y1 - min(1.0, max(0.0, t)) * (y1 - y0)

    depths = sorted({int(d) for series in table.values() for d in series})
    span = max(1, len(depths) - 1)

    def x_of(depth: int) -> float:  # depths double: evenly spaced, a log2 axis
        return x0 + 10 + depths.index(depth) / span * (x1 - x0 - 20)

    for d in depths:
        draw.text((x_of(d) - 4, y1 + 4), str(d), fill="black")
    for v in ((1e-4, 1e-2, 1.0) if log else (0.0, 0.5, 1.0)):
        draw.text((left + 4, y_of(v) - 6), f"{v:g}", fill="black")
    if key == "test_accuracy":
        chance = y_of(1 / graphs.CLASSES)
        for x in range(int(x0), int(x1), 8):
            draw.line([(x, chance), (x + 4, chance)], fill=(150, 150, 150))
    for name, colour in SERIES.items():
        series = table.get(name, {})
        points = [(x_of(int(d)), y_of(m[key])) for d, m in sorted(series.items(), key=lambda kv: int(kv[0]))]
        if len(points) > 1:
            draw.line(points, fill=colour, width=2)
        for x, y in points:
            draw.ellipse([x - 3, y - 3, x + 3, y + 3], fill=colour)
    draw.text((x1 - 40, y1 - 14), "depth", fill="black")
