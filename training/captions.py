"""Captions of the digits from what each image is and what can be measured on it. numpy only.

Three attributes: the digit; its stroke weight (thin / regular / thick: the image's ink mass
against the terciles of its class); its slant (left / upright / right: the shear of its second
image moments against the terciles of its class). A caption names any subset of them, in one of
several phrasings; the judge's phrasings are held out of training. The same measures score
generated samples, so "thick" means the same thing in a caption and in the judge.
"""

from dataclasses import dataclass

import numpy as np

from service.sampling.prompts import NULL, PAD, words

DIGIT_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
WEIGHTS = ["thin", "regular", "thick"]
SLANTS = ["left", "upright", "right"]

# Phrasings: {d} digit word, {n} numeral, {w} weight, {s} slant phrase. Each names the subset of
# attributes its slots show. The judge's are held out: new orders and pairings of trained words.
TRAIN_PHRASINGS = [
    "a {w} {d} {s}", "{n}, {w} and {s}", "the digit {d}", "the number {n}", "{d}", "{n}",
    "a {w} {d}", "{n} with {w} strokes", "a {d} {s}", "the digit {n}, {s}", "a {w} digit",
    "a digit {s}", "a {w} digit {s}", "{w} strokes and {s}", "the number {d} with {w} strokes",
    "{w} {d}, {s}",
]
HELD_OUT_PHRASINGS = [
    "{s}, a {w} {n}", "the digit {d} with {w} strokes, {s}", "{w} {n}", "the number {d}, {s}",
    "a {d}", "{n} and {s}", "a digit with {w} strokes, {s}", "a {w} {n} {s}",
]
# A slant phrase per slant: a trained caption says either; the judge's say the first.
SLANT_PHRASES = {"left": ["leaning left", "slanted left"], "upright": ["upright", "standing upright"],
                 "right": ["leaning right", "slanted right"]}


def vocabulary() -> list[str]:
    """PAD, NULL, then every word a training caption can hold, sorted."""
    seen = set()
    for phrasing in TRAIN_PHRASINGS:
        seen.update(words(phrasing.format(d="", n="", w="", s="")))
    seen.update(DIGIT_WORDS, (str(i) for i in range(10)), WEIGHTS)
    for phrases in SLANT_PHRASES.values():
        for phrase in phrases:
            seen.update(words(phrase))
    held_out = set()
    for phrasing in HELD_OUT_PHRASINGS:
        held_out.update(words(phrasing.format(d="", n="", w="", s="")))
    assert held_out <= seen, f"held-out phrasings use untrained words: {held_out - seen}"
    return [PAD, NULL, *sorted(seen)]


def slots(phrasing: str) -> set[str]:
    """The attributes a phrasing names: 'digit', 'weight', 'slant'."""
    named = set()
    if "{d}" in phrasing or "{n}" in phrasing:
        named.add("digit")
    if "{w}" in phrasing:
        named.add("weight")
    if "{s}" in phrasing:
        named.add("slant")
    return named


# ---------------------------------------------------------------------------- measures


def ink_mass(images: np.ndarray) -> np.ndarray:
    """Sum of raw pixel values (0..16 each) per image: (N, 1, 8, 8) -> (N,)."""
    return images.reshape(len(images), -1).sum(axis=1)


def slant(images: np.ndarray) -> np.ndarray:
    """Shear -mu11 / mu02 of each image's ink (raw units): > 0 leans right. (N, 1, 8, 8) -> (N,).

    Second central moments (Hu 1962): x grows rightwards, y downwards, so a right-leaning
    stroke has x falling as y grows (mu11 < 0); -mu11/mu02 is the x shift per row of height.
    """
    ink = np.clip(images.reshape(len(images), 8, 8).astype(np.float64), 0, None)
    y, x = np.mgrid[0:8, 0:8]
    mass = ink.sum(axis=(1, 2)) + 1e-9
    cx = (ink * x).sum(axis=(1, 2)) / mass
    cy = (ink * y).sum(axis=(1, 2)) / mass
    dx, dy = x[None] - cx[:, None, None], y[None] - cy[:, None, None]
    mu11 = (ink * dx * dy).sum(axis=(1, 2)) / mass
    mu02 = (ink * dy * dy).sum(axis=(1, 2)) / mass
    return -mu11 / (mu02 + 1e-9)


@dataclass
class Thresholds:
    """Per class, the terciles of ink mass and slant of the training images: (10, 2) each."""

    weight: np.ndarray
    slant: np.ndarray

    @classmethod
    def fit(cls, images: np.ndarray, digits: np.ndarray) -> "Thresholds":
        q = [1 / 3, 2 / 3]
        mass, shear = ink_mass(images), slant(images)
        return cls(np.array([np.quantile(mass[digits == c], q) for c in range(10)]),
                   np.array([np.quantile(shear[digits == c], q) for c in range(10)]))

    def measure(self, images: np.ndarray, digits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Weight and slant classes (0, 1, 2 each) of images (raw units) read as `digits`."""
        return (_tercile(ink_mass(images), self.weight[digits]),
                _tercile(slant(images), self.slant[digits]))

    def as_dict(self) -> dict:
        return {"weight_ink_mass": self.weight.round(4).tolist(), "slant": self.slant.round(4).tolist()}


def _tercile(values: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    return (values > bounds[:, 0]).astype(np.int64) + (values > bounds[:, 1])


def clear(images: np.ndarray, digits: np.ndarray, margin: float) -> tuple[np.ndarray, np.ndarray]:
    """Masks (N,) of images whose weight / slant lies `margin` (in quantiles) inside its tercile.

    Captions name an attribute only where the image shows it clearly: an image on the edge of
    two terciles says neither, so a caption never calls a borderline digit "thick".
    """
    masks = []
    for values in (ink_mass(images), slant(images)):
        rank = np.zeros(len(values))
        for c in range(10):
            idx = np.flatnonzero(digits == c)
            rank[idx] = (np.argsort(np.argsort(values[idx])) + 0.5) / len(idx)  # quantile in class
        masks.append(np.min(np.abs(rank[:, None] - np.array([1 / 3, 2 / 3])[None]), axis=1) >= margin)
    return masks[0], masks[1]


# ---------------------------------------------------------------------------- captions


def caption(phrasing: str, digit: int, weight: int, slant_class: int, rng: np.random.Generator,
            held_out: bool = False) -> str:
    """One caption in `phrasing`; a trained one picks among synonyms of the slant phrase."""
    phrases = SLANT_PHRASES[SLANTS[slant_class]]
    phrase = phrases[0] if held_out else phrases[rng.integers(len(phrases))]
    return phrasing.format(d=DIGIT_WORDS[digit], n=digit, w=WEIGHTS[weight], s=phrase)


def training_captions(digits: np.ndarray, weights: np.ndarray, slants: np.ndarray,
                      weight_clear: np.ndarray, slant_clear: np.ndarray, per_image: int,
                      seed: int) -> list[list[str]]:
    """`per_image` captions of each training image, phrasings drawn among those it can say."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(len(digits)):
        allowed = [p for p in TRAIN_PHRASINGS
                   if ("weight" not in slots(p) or weight_clear[i])
                   and ("slant" not in slots(p) or slant_clear[i])]
        picks = rng.integers(len(allowed), size=per_image)
        out.append([caption(allowed[k], digits[i], weights[i], slants[i], rng) for k in picks])
    return out


@dataclass
class Asked:
    """What judge captions ask for: -1 where a caption leaves an attribute out."""

    captions: list[str]
    digit: np.ndarray  # (N,)
    weight: np.ndarray  # (N,)
    slant: np.ndarray  # (N,)


def judge_captions(n: int, seed: int) -> Asked:
    """n captions in the held-out phrasings: digits cycle 0..9, weights, slants and phrasings
    drawn uniformly."""
    rng = np.random.default_rng(seed)
    digit = np.arange(n) % 10
    weight, slant_class = rng.integers(3, size=n), rng.integers(3, size=n)
    phrasing = rng.integers(len(HELD_OUT_PHRASINGS), size=n)
    texts = []
    named = {"digit": np.zeros(n, bool), "weight": np.zeros(n, bool), "slant": np.zeros(n, bool)}
    for i in range(n):
        p = HELD_OUT_PHRASINGS[phrasing[i]]
        texts.append(caption(p, digit[i], weight[i], slant_class[i], rng, held_out=True))
        for attribute in slots(p):
            named[attribute][i] = True
    return Asked(texts, np.where(named["digit"], digit, -1), np.where(named["weight"], weight, -1),
                 np.where(named["slant"], slant_class, -1))
