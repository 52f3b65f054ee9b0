"""An upload prepared the way the digits data was made: grey, ink found, cropped, fitted, averaged.

The digits (UCI optdigits) are 32x32 bitmaps of a glyph cropped to its ink and scaled so its
longer side fills the box, aspect kept, centred; each 4x4 block's ink is counted (0..16). A
photo of a drawn digit goes through the same steps here, with the parameters of config.yaml's
`data.image.prepare` (service.config.ImagePrep).
"""

import numpy as np
from PIL import Image, ImageFilter

from service.config import ImagePrep
from service.errors import InvalidInput


def prepare(gray: np.ndarray, height: int, width: int, prep: ImagePrep, what: str) -> np.ndarray:
    """gray (H, W) in [0, 1] (1 = white) -> ink (height, width) in [0, 1], strongest ink 1."""
    h, w = gray.shape
    if min(h, w) < prep.min_side:
        raise InvalidInput(f"{what} is {w}x{h} pixels; an image needs at least {prep.min_side} on each side")
    gray = _shrink(gray, prep.work_size)
    found = _denoised(gray, prep.denoise, min(height, width))  # for finding ink, not for its values
    paper = float(np.median(found))  # most of a page is paper
    dark = prep.polarity == "dark_ink" or (prep.polarity == "auto" and paper > (found.min() + found.max()) / 2)
    sign = -1.0 if dark else 1.0
    ink, found_ink = sign * (gray - paper), sign * (found - paper)  # signed: noise averages out
    strongest = float(found_ink.max())
    if strongest < prep.min_contrast:
        raise InvalidInput(
            f"{what} has no ink: nothing differs from the paper by {prep.min_contrast:g} of the grey range"
        )
    rows, cols = _ink_box(found_ink >= prep.ink_threshold * strongest, prep.crop_trim)
    crop = ink[rows, cols]
    return _fit(crop, height, width, prep.margin)


def _shrink(gray: np.ndarray, longest: int) -> np.ndarray:
    """Area-average so the longer side is at most `longest`: bounds the work, keeps the ink."""
    h, w = gray.shape
    if max(h, w) <= longest:
        return gray
    scale = longest / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.asarray(Image.fromarray(gray.astype(np.float32), mode="F").resize(size, Image.Resampling.BOX), np.float64)


def _denoised(gray: np.ndarray, size: int, target: int) -> np.ndarray:
    # A median filter removes specks of sensor or JPEG noise that would stretch the ink's box;
    # on images not much bigger than the target it would remove strokes, so it is skipped.
    if size < 3 or min(gray.shape) < 8 * target:
        return gray
    size = size if size % 2 else size + 1
    image = Image.fromarray(gray.astype(np.float32), mode="F").filter(ImageFilter.MedianFilter(size))
    return np.asarray(image, np.float64)


def _ink_box(mask: np.ndarray, trim: float) -> tuple[slice, slice]:
    """The rows and columns holding the ink, less `trim` of its mass at each edge."""

    def span(profile: np.ndarray) -> slice:
        cumulative = np.cumsum(profile) / profile.sum()
        first = int(np.searchsorted(cumulative, trim, side="right"))
        last = int(np.searchsorted(cumulative, 1.0 - trim, side="left"))
        return slice(first, max(first, last) + 1)

    return span(mask.sum(axis=1)), span(mask.sum(axis=0))


def _fit(crop: np.ndarray, height: int, width: int, margin: float) -> np.ndarray:
    """The crop centred on a canvas of the target's aspect that it fills (less the margin),
    then area-averaged to (height, width) and stretched so the strongest ink is 1."""
    h, w = crop.shape
    scale = max(h / height, w / width) / (1.0 - 2.0 * margin)  # source px per target px
    canvas_h, canvas_w = max(h, round(height * scale)), max(w, round(width * scale))
    canvas = np.zeros((canvas_h, canvas_w), np.float32)
    top, left = (canvas_h - h) // 2, (canvas_w - w) // 2
    canvas[top: top + h, left: left + w] = crop
    small = Image.fromarray(canvas, mode="F").resize((width, height), Image.Resampling.BOX)
    ink = np.clip(np.asarray(small, np.float64), 0.0, None)
    return ink / ink.max() if ink.max() > 0 else ink
