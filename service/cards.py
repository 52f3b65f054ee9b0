"""A loaded version's card: its card.json, the config a page needs, and its files.

The folder is the loaded version's own (repository root / its name / its version number), and a
file is one of a fixed set looked up by key: nothing a client sends becomes part of a path.
"""

from pathlib import Path

import orjson

from service.errors import NotFound
from service.tasks.base import ServedModel

CARD = "card.json"
# The only files served; depth.png: a graph network's accuracy and oversmoothing against depth.
FILES = {"samples.png": "image/png", "loss.png": "image/png", "depth.png": "image/png"}


def card(root: Path, model: ServedModel) -> dict:
    """Blocking (reads files): run it in a thread."""
    folder = _folder(root, model)
    raw = _read(folder / CARD)
    try:
        document = orjson.loads(raw) if raw is not None else None
    except orjson.JSONDecodeError:  # training's file, not the request's: say so, don't 500
        document = None
    files = [f for f in FILES if (folder / f).is_file()]
    return {"name": model.name, "version": str(model.version), "provider": model.provider,
            "config": _served_config(model), "card": document, "files": files}


def card_file(root: Path, model: ServedModel, file: str) -> tuple[bytes, str]:
    """(content, media type) of one of FILES. Blocking: run it in a thread."""
    known = next((f for f in FILES if f == file), None)  # our constant, not the request's string
    if known is None:
        raise NotFound(f"no file '{file}': a model serves only {', '.join(FILES)}")
    data = _read(_folder(root, model) / known)
    if data is None:
        raise NotFound(f"model '{model.name}' version {model.version} has no {known}")
    return data, FILES[known]


def _folder(root: Path, model: ServedModel) -> Path:
    # model.name was found among the names the repository scan listed, version is an int.
    return Path(root) / model.name / str(model.version)


def _served_config(model: ServedModel) -> dict:
    """What a page needs to build a form for the model; the schedule and operator policy stay out."""
    config = model.config
    facts = {
        "task": config.task, "description": config.description, "labels": config.labels,
        "features": config.features, "data": config.data.model_dump(exclude_none=True) if config.data else None,
        "latent_dim": config.latent_dim, "null_label": config.null_label,
        "explain": config.explain.model_dump(exclude_none=True) if config.explain else None,
    }
    if config.task in ("gan", "vae", "flow", "diffusion", "text-to-image"):
        facts["max_samples"] = config.max_samples
    if config.task in ("diffusion", "text-to-image"):  # the task resolves these against the schedule's length
        facts["default_steps"], facts["max_steps"] = model.default_steps, model.max_steps
    if config.task == "text-to-image":  # the prompt box's words, suggestions and default
        facts["vocabulary"], facts["prompt_examples"] = config.vocabulary, config.prompt_examples
        facts["default_guidance"] = model.default_guidance
    return {k: v for k, v in facts.items() if v is not None}


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        return None
