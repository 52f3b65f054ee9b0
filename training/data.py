"""The three bundled data sets, their fixed seeded splits, and the units maps of DataSpec.

Nothing is downloaded: scikit-learn ships digits and diabetes, and generates two moons.
Every split records how to rebuild it (method, seed, fractions) and its indices, for the card.
"""

from dataclasses import dataclass

import numpy as np
from sklearn.datasets import load_diabetes, load_digits, make_moons
from sklearn.model_selection import train_test_split

from training.units import to_network, to_raw  # noqa: F401  (re-exported for the scripts)

SPLIT_SEED = 0
TEST_FRACTION = 0.2
VAL_FRACTION = 0.1  # of the whole set
DIGITS_RAW_RANGE = (0.0, 16.0)  # load_digits pixel values: 0 (paper) .. 16 (ink)
MOONS_SAMPLES = 3000
MOONS_NOISE = 0.05


@dataclass
class Split:
    """Arrays of one data set, split three ways, plus the recipe and indices for the card."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    card: dict


def _three_way(n: int, stratify: np.ndarray | None, seed: int) -> tuple[np.ndarray, ...]:
    """Indices of a train/val/test split: test first, then val out of the rest."""
    index = np.arange(n)
    rest, test = train_test_split(
        index, test_size=TEST_FRACTION, random_state=seed, stratify=stratify
    )
    val_share = VAL_FRACTION / (1.0 - TEST_FRACTION)
    train, val = train_test_split(
        rest,
        test_size=val_share,
        random_state=seed,
        stratify=None if stratify is None else stratify[rest],
    )
    return np.sort(train), np.sort(val), np.sort(test)


def _split(x: np.ndarray, y: np.ndarray, stratify: np.ndarray | None, card: dict, by: str = "label") -> Split:
    train, val, test = _three_way(len(x), stratify, SPLIT_SEED)
    card = {
        **card,
        "split": {
            "method": "sklearn.model_selection.train_test_split: test first, then val from the rest"
            + (f", stratified by {by}" if stratify is not None else ""),
            "seed": SPLIT_SEED,
            "fractions": {"train": 1 - TEST_FRACTION - VAL_FRACTION, "val": VAL_FRACTION,
                          "test": TEST_FRACTION},
            "sizes": {"train": len(train), "val": len(val), "test": len(test)},
            "indices": {"train": train.tolist(), "val": val.tolist(), "test": test.tolist()},
        },
    }
    return Split(x[train], y[train], x[val], y[val], x[test], y[test], card)


def digits() -> Split:
    """Digits as raw pixel values 0..16, shape (N, 1, 8, 8) float32; labels int64 0..9."""
    bunch = load_digits()
    x = bunch.images.astype(np.float32)[:, None]  # (N, 1, 8, 8)
    y = bunch.target.astype(np.int64)  # (N,)
    card = {"name": "digits", "source": "sklearn.datasets.load_digits", "samples": len(x)}
    return _split(x, y, stratify=y, card=card)


def diabetes() -> Split:
    """Diabetes in raw units (load_diabetes(scaled=False)): x (N, 10), y (N,) float32."""
    bunch = load_diabetes(scaled=False)
    x = bunch.data.astype(np.float32)
    y = bunch.target.astype(np.float32)
    card = {"name": "diabetes", "source": "sklearn.datasets.load_diabetes(scaled=False)",
            "samples": len(x), "features": list(bunch.feature_names)}
    # Stratified by target decile, as the digits are by label: with 442 patients an
    # unstratified 20% test set can miss a range of targets (on seed 0 it held so few
    # extremes that even linear regression scored R² 0.33, against 0.45 over typical seeds).
    deciles = np.digitize(y, np.quantile(y, np.linspace(0, 1, 11)[1:-1]))
    return _split(x, y, stratify=deciles, card=card, by="target decile")


def diabetes_features() -> list[str]:
    return list(load_diabetes().feature_names)


def moons() -> Split:
    """Two moons, x (N, 2) float32; y is the moon each point came from (unused by the flow)."""
    x, y = make_moons(n_samples=MOONS_SAMPLES, noise=MOONS_NOISE, random_state=SPLIT_SEED)
    card = {"name": "two moons",
            "source": f"sklearn.datasets.make_moons(n_samples={MOONS_SAMPLES}, "
                      f"noise={MOONS_NOISE}, random_state={SPLIT_SEED})",
            "samples": len(x)}
    return _split(x.astype(np.float32), y.astype(np.int64), stratify=None, card=card)


# How the service prepares an uploaded photo like these digits (service/ink.py, issue 15): the
# optdigits glyphs were cropped to their ink and fill all 8 rows (margin 0); the other values were
# chosen by `python bench/uploads.py` (docs/MODELS.md).
DIGITS_IMAGE_PREPARE = {"work_size": 512, "polarity": "auto", "denoise": 3, "ink_threshold": 0.25,
                        "crop_trim": 0.01, "margin": 0.0, "min_side": 8, "min_contrast": 0.1}


def digits_spec(network_range: tuple[float, float],
                raw_range: tuple[float, float] = DIGITS_RAW_RANGE) -> dict:
    """The DataSpec of an 8x8 digit seen by a network in network_range."""
    image = {"height": 8, "width": 8, "prepare": dict(DIGITS_IMAGE_PREPARE)}
    return {"shape": [1, 8, 8], "raw_range": list(raw_range),
            "network_range": list(network_range), "image": image}
