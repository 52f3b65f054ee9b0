"""Attributions drawn over their image: a PNG people read at a glance (red for, blue against)."""

import io

import numpy as np
from PIL import Image

CELL_PX = 32  # each input pixel becomes a CELL_PX square


def heatmap_png(ink: np.ndarray, phi: np.ndarray) -> bytes:
    """ink (H, W) in [0, 1] as grey, overlaid with phi (H, W): red where a pixel raised the
    explained output, blue where it lowered it, stronger the larger |phi| (scaled to its max)."""
    scale = float(np.abs(phi).max()) or 1.0
    strength = np.clip(np.abs(phi) / scale, 0.0, 1.0)[..., None]  # (H, W, 1)
    grey = (0.25 + 0.5 * np.clip(ink, 0.0, 1.0))[..., None] * np.ones(3)  # dim the drawing
    colour = np.where((phi >= 0)[..., None], np.array([0.85, 0.1, 0.1]), np.array([0.1, 0.3, 0.9]))
    rgb = (1 - 0.85 * strength) * grey + 0.85 * strength * colour  # (H, W, 3)
    image = Image.fromarray((rgb * 255).round().astype(np.uint8), mode="RGB")
    h, w = phi.shape
    out = io.BytesIO()
    image.resize((w * CELL_PX, h * CELL_PX), Image.Resampling.NEAREST).save(out, format="PNG")
    return out.getvalue()
