"""Out-of-distribution sets for the digit guard: 8x8 images in raw units 0..16, shape (N, 1, 8, 8).

Each set is made from the held-out test digits or from nothing, with a fixed seed. Letters and
strokes are drawn the way the digits data was made (UCI optdigits): a glyph fitted into a 32x32
bitmap, then the ink pixels of each 4x4 block counted (0..16). The letters use the TrueType font
that ships inside Pillow (ImageFont.load_default: Aileron Regular), so nothing is downloaded.
"""

import string

import numpy as np
from PIL import Image, ImageDraw, ImageFont

BITMAP = 32  # optdigits bitmaps are 32x32, counted in 4x4 blocks
RENDER = 128  # glyphs are drawn large, then fitted into the bitmap
LETTER_SIZES = (64, 80, 96)  # font sizes (px) at which A-Z are rendered
LETTER_STROKES = (0, 2, 4)  # extra stroke width: regular, bold, heavier, as pens differ


def bitmap_to_digit(bitmap: np.ndarray) -> np.ndarray:
    """A binary (32, 32) bitmap -> (8, 8) counts 0..16 of its 4x4 blocks."""
    return bitmap.reshape(8, 4, 8, 4).sum(axis=(1, 3)).astype(np.float32)


def fit_bitmap(ink: np.ndarray) -> np.ndarray:
    """A binary drawing of any size -> (32, 32): cropped to its ink, the longer side filling
    the bitmap, aspect kept, centred (the optdigits data fills all 8 rows: no margin)."""
    rows, cols = np.nonzero(ink)
    crop = ink[rows.min(): rows.max() + 1, cols.min(): cols.max() + 1]
    h, w = crop.shape
    scale = BITMAP / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    small = np.asarray(Image.fromarray((crop * 255).astype(np.uint8)).resize(size, Image.Resampling.BOX)) >= 128
    out = np.zeros((BITMAP, BITMAP), dtype=bool)
    top, left = (BITMAP - small.shape[0]) // 2, (BITMAP - small.shape[1]) // 2
    out[top: top + small.shape[0], left: left + small.shape[1]] = small
    return out


def letters() -> np.ndarray:
    """A-Z in Pillow's font at several sizes and stroke widths: (26 * 9, 1, 8, 8)."""
    out = []
    for size in LETTER_SIZES:
        font = ImageFont.load_default(size=size)
        for stroke in LETTER_STROKES:
            for letter in string.ascii_uppercase:
                out.append(bitmap_to_digit(fit_bitmap(render(letter, font, stroke))))
    return np.stack(out)[:, None]


def render(text: str, font: ImageFont.FreeTypeFont, stroke: int = 0) -> np.ndarray:
    """Text drawn white on black on a RENDER x RENDER canvas -> binary (RENDER, RENDER)."""
    image = Image.new("L", (RENDER, RENDER), 0)
    ImageDraw.Draw(image).text((RENDER // 2, RENDER // 2), text, fill=255, font=font, anchor="mm",
                               stroke_width=stroke, stroke_fill=255)
    return np.asarray(image) >= 128


def strokes(n: int, seed: int) -> np.ndarray:
    """Scribbles: 1-4 random straight or curved strokes of a pen 2-5 px wide (of 32)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        image = Image.new("L", (RENDER, RENDER), 0)
        draw = ImageDraw.Draw(image)
        for _ in range(rng.integers(1, 5)):
            points = [tuple(p) for p in rng.uniform(8, RENDER - 8, (rng.integers(2, 5), 2)).tolist()]
            draw.line(points, fill=255, width=int(rng.integers(8, 21)), joint="curve")
        out.append(bitmap_to_digit(fit_bitmap(np.asarray(image) >= 128)))
    return np.stack(out)[:, None]


def noise(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 16, (n, 1, 8, 8)).astype(np.float32)


def shuffled(digits: np.ndarray, seed: int) -> np.ndarray:
    """Each digit's own 64 pixels in a random order: the same ink, no shape."""
    rng = np.random.default_rng(seed)
    flat = digits.reshape(len(digits), -1)
    return np.stack([row[rng.permutation(flat.shape[1])] for row in flat]).reshape(digits.shape)


def constant() -> np.ndarray:
    """Blank (0) and every constant grey level 1..16."""
    return np.repeat(np.arange(17, dtype=np.float32), 64).reshape(17, 1, 8, 8)


def inverted(digits: np.ndarray) -> np.ndarray:
    return (16.0 - digits).astype(np.float32)


def rotated(digits: np.ndarray) -> np.ndarray:
    return np.rot90(digits, k=1, axes=(2, 3)).copy()


def names() -> dict[str, list[str]]:
    """What each image of the sets made without randomness is, in order (for the card)."""
    letters_in_order = [c for _ in LETTER_SIZES for _ in LETTER_STROKES for c in string.ascii_uppercase]
    return {"blank and constant": [f"level {v}" for v in range(17)], "letters A-Z": letters_in_order}


def sets(test_digits: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    """Every out-of-distribution set of the guard's measurement, by name."""
    n = len(test_digits)
    return {
        "uniform noise": noise(n, seed),
        "shuffled pixels": shuffled(test_digits, seed),
        "blank and constant": constant(),
        "inverted": inverted(test_digits),
        "rotated 90 degrees": rotated(test_digits),
        "random strokes": strokes(n, seed),
        "letters A-Z": letters(),
    }
