"""KServe V1 instances -> one array in raw units: numbers, nested arrays, images, named features."""

import base64
import binascii

import numpy as np

from service import imaging
from service.errors import InvalidInput
from service.tasks.units import Units

_FLOAT32_MAX = float(np.finfo(np.float32).max)


def parse_instances(instances, units: Units, features: list[str] | None = None, what: str = "instances") -> np.ndarray:
    """(N, *shape) float32 in raw units. An instance is numbers (flat or nested to the shape),
    {"image_b64": ...}, the bytes of an uploaded image, or {feature: value} for named features."""
    if not isinstance(instances, list) or not instances:
        raise InvalidInput(f"'{what}' must be a non-empty list")
    budget = imaging.PixelBudget()  # decoded pixels of all the request's images together
    rows = [_instance(item, units, features, f"{what}[{i}]", budget) for i, item in enumerate(instances)]
    return np.stack(rows).astype(np.float32)


def _instance(item, units: Units, features: list[str] | None, where: str, budget) -> np.ndarray:
    if isinstance(item, bytes):  # a multipart upload
        return _image(item, units, where, budget)
    if isinstance(item, dict):
        if "image_b64" in item:
            if set(item) != {"image_b64"} or not isinstance(item["image_b64"], str):
                raise InvalidInput(f"{where}: an image instance is {{\"image_b64\": \"<base64 PNG or JPEG>\"}}")
            return _image(_b64(item["image_b64"], where), units, where, budget)
        return _named(item, units, features, where)
    return _numbers(item, units, where)


def _numbers(item, units: Units, where: str) -> np.ndarray:
    try:
        array = np.asarray(item, dtype=np.float64)
    except (ValueError, TypeError):
        raise InvalidInput(f"{where}: expected numbers, nested to the shape {list(units.shape)}") from None
    # Flat, the full shape, or the shape without its size-1 axes (8x8 for [1, 8, 8]) all fit.
    fits = array.size == units.size and (
        array.ndim == 1 or [d for d in array.shape if d != 1] == [d for d in units.shape if d != 1]
    )
    if not fits:
        raise InvalidInput(
            f"{where}: shape {list(array.shape)} does not fit the model's {list(units.shape)} "
            f"({units.size} numbers, flat or nested)"
        )
    # The networks compute in float32: 1e39 would reach them as inf.
    if not np.isfinite(array).all() or (np.abs(array) > _FLOAT32_MAX).any():
        raise InvalidInput(f"{where}: values must be finite numbers within float32's range")
    return array.reshape(units.shape)


def _named(item: dict, units: Units, features: list[str] | None, where: str) -> np.ndarray:
    if not features:
        raise InvalidInput(f"{where}: this model has no named features; send an array of {units.size} numbers")
    unknown = [k for k in item if k not in features]
    missing = [f for f in features if f not in item]
    if unknown or missing:
        problems = [f"unknown {_plural('feature', unknown)} {_quoted(unknown)}"] if unknown else []
        problems += [f"missing {_plural('feature', missing)} {_quoted(missing)}"] if missing else []
        raise InvalidInput(f"{where}: {'; '.join(problems)}; the features are: {', '.join(features)}")
    values = [item[f] for f in features]
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        raise InvalidInput(f"{where}: feature values must be numbers")
    return _numbers(values, units, where)


def _plural(word: str, items: list) -> str:
    return word if len(items) == 1 else f"{word}s"


def _quoted(names: list[str]) -> str:
    return ", ".join(f"'{n}'" for n in names)


def _b64(text: str, where: str) -> bytes:
    if text.startswith("data:"):  # a data URL, as browsers make them
        text = text.partition(",")[2]
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput(f"{where}: image_b64 is not valid base64") from None


def _image(data: bytes, units: Units, where: str, budget: imaging.PixelBudget) -> np.ndarray:
    if units.image is None:
        raise InvalidInput(f"{where}: this model does not take images (its config has no data.image)")
    image = units.image
    ink = imaging.decode_ink(data, image.height, image.width, what=where, prepare=image.prepare, budget=budget)
    if ink.size != units.size:
        raise InvalidInput(f"{where}: a {units.image.height}x{units.image.width} image does not fit shape {list(units.shape)}")
    return units.from_ink(ink).reshape(units.shape)
