"""Images in and out of the task endpoints: uploaded PNG/JPEG -> ink in [0, 1], samples -> PNG.

"Ink" is the unit between pixels and a model's raw units: 0 is background, 1 is the strongest
stroke. Models see bright ink on a dark ground (the digits datasets do); people photograph dark
ink on white paper, so an upload whose border is brighter than its centre is inverted.
"""

import base64
import io
import math

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from service import ink as ink_steps
from service.config import ImagePrep
from service.errors import InvalidInput

FORMATS = ("PNG", "JPEG")
MAX_PIXELS = 4096 * 4096  # checked before decoding, so a small file cannot unpack into gigabytes
MAX_REQUEST_PIXELS = 4 * MAX_PIXELS  # all the images of one request together


class PixelBudget:
    """The decoded pixels one request may still spend (MAX_REQUEST_PIXELS), checked before decoding."""

    def __init__(self, pixels: int = MAX_REQUEST_PIXELS):
        self.left = pixels

    def spend(self, pixels: int, what: str) -> None:
        if pixels > self.left:
            raise InvalidInput(
                f"{what} would take the request over {MAX_REQUEST_PIXELS} decoded pixels "
                f"(MAX_REQUEST_PIXELS, all images together); send fewer or smaller images"
            )
        self.left -= pixels
GRID_CELL_PX = 32  # grid cells are scaled up to at least this size to be seen


def decode_ink(data: bytes, height: int, width: int, what: str = "image", prepare: ImagePrep | None = None,
               budget: PixelBudget | None = None) -> np.ndarray:
    """A PNG or JPEG as ink (height, width) in [0, 1]: grayscale, inverted if needed, resized;
    with `prepare`, cropped to its ink and fitted as the training data was (service/ink.py)."""
    try:
        image = Image.open(io.BytesIO(data), formats=FORMATS)
        if image.width * image.height > MAX_PIXELS:
            raise InvalidInput(
                f"{what} is {image.width}x{image.height} pixels; at most {MAX_PIXELS} (MAX_PIXELS) are accepted"
            )
        if budget is not None:
            budget.spend(image.width * image.height, what)
        image = ImageOps.exif_transpose(image)  # phone photos carry their rotation in EXIF
        image.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        raise InvalidInput(f"{what} is not a PNG or JPEG image") from None
    gray = np.asarray(_on_white(image).convert("L"), dtype=np.float64) / 255.0  # (H, W), 1 = white
    if prepare is not None:
        return ink_steps.prepare(gray, height, width, prepare, what)
    if _border_brighter_than_centre(gray):
        gray = 1.0 - gray
    # BOX averages every source pixel into the target one: right for shrinking photos, and
    # exact for images that were upscaled by an integer factor.
    small = Image.fromarray((gray * 255.0).round().astype(np.uint8)).resize((width, height), Image.Resampling.BOX)
    ink = np.asarray(small, dtype=np.float64) / 255.0
    # Paper is rarely white and ink rarely black: stretch what is there onto the full range.
    low, high = ink.min(), ink.max()
    return (ink - low) / (high - low) if high > low else np.zeros_like(ink)


def _on_white(image: Image.Image) -> Image.Image:
    """Transparent pixels become white paper (an RGBA digit on a clear ground would turn black)."""
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        paper = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(paper, rgba)
    return image


def _border_brighter_than_centre(gray: np.ndarray) -> bool:
    h, w = gray.shape
    band_h, band_w = max(1, h // 8), max(1, w // 8)  # the outer eighth on each side
    border = np.concatenate([gray[:band_h].ravel(), gray[-band_h:].ravel(),
                             gray[:, :band_w].ravel(), gray[:, -band_w:].ravel()])
    centre = gray[h // 4: h - h // 4, w // 4: w - w // 4]  # the middle half on each axis
    return border.mean() > centre.mean()


def png(ink: np.ndarray) -> bytes:
    """One sample, ink (H, W) in [0, 1], as an 8-bit grayscale PNG at its own size."""
    return _encode(Image.fromarray(_bytes(ink)))


def grid_png(ink: np.ndarray) -> bytes:
    """Samples ink (N, H, W) in a near-square grid, row by row, scaled up to be seen."""
    n, h, w = ink.shape
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    canvas = np.full((rows * (h + 1) + 1, cols * (w + 1) + 1), 128, dtype=np.uint8)  # grey lines
    for i, cell in enumerate(_bytes(ink)):
        r, c = divmod(i, cols)
        canvas[1 + r * (h + 1): 1 + r * (h + 1) + h, 1 + c * (w + 1): 1 + c * (w + 1) + w] = cell
    scale = max(1, math.ceil(GRID_CELL_PX / max(h, w)))
    image = Image.fromarray(canvas)
    if scale > 1:
        image = image.resize((canvas.shape[1] * scale, canvas.shape[0] * scale), Image.Resampling.NEAREST)
    return _encode(image)


def _bytes(ink: np.ndarray) -> np.ndarray:
    return (np.clip(ink, 0.0, 1.0) * 255.0).round().astype(np.uint8)


def _encode(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
