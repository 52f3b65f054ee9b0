"""Read-only model cards for people and the playground: GET /v2/models/{name}[/versions/{v}]/card
and .../files/{samples.png|loss.png}.

The folder is the loaded version's own (repository root / its name / its version number), and a
file is one of a fixed set looked up by key: nothing a client sends becomes part of a path.
"""

import asyncio
from pathlib import Path

import orjson
from fastapi import APIRouter
from fastapi.responses import Response

from service.errors import ModelNotFound
from service.protocol.responses import JSONResponse
from service.protocol.v2 import DataPlaneDep
from service.protocol.v2_schemas import ERRORS
from service.tasks.base import ServedModel

router = APIRouter(prefix="/v2", default_response_class=JSONResponse, tags=["Model cards"])

CARD = "card.json"
# The only files served; depth.png: a graph network's accuracy and oversmoothing against depth.
FILES = {"samples.png": "image/png", "loss.png": "image/png", "depth.png": "image/png"}


def _folder(dataplane, model: ServedModel) -> Path:
    # model.name was found among the names the repository scan listed, version is an int.
    return Path(dataplane.registry.root) / model.name / str(model.version)


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


def _card_routes(path: str) -> None:
    """Each route exists with and without /versions/{version}."""

    @router.get(f"{path}/card", responses=ERRORS, summary="The version's card.json, served config and files")
    async def card(dataplane: DataPlaneDep, name: str, version: str | None = None):
        model = dataplane.model(name, version)
        folder = _folder(dataplane, model)
        raw = await asyncio.to_thread(_read, folder / CARD)
        try:
            document = orjson.loads(raw) if raw is not None else None
        except orjson.JSONDecodeError:  # training's file, not the request's: say so, don't 500
            document = None
        files = [f for f in FILES if await asyncio.to_thread((folder / f).is_file)]
        return {"name": model.name, "version": str(model.version), "provider": model.provider,
                "config": _served_config(model), "card": document, "files": files}

    @router.get(
        f"{path}/files/{{file}}", responses={200: {"content": {"image/png": {}}}, **ERRORS},
        response_class=Response, summary="samples.png, loss.png or depth.png of the version",
    )
    async def card_file(dataplane: DataPlaneDep, name: str, file: str, version: str | None = None):
        model = dataplane.model(name, version)
        known = next((f for f in FILES if f == file), None)  # our constant, not the request's string
        if known is None:
            raise ModelNotFound(f"no file '{file}': a model serves only {', '.join(FILES)}")
        data = await asyncio.to_thread(_read, _folder(dataplane, model) / known)
        if data is None:
            raise ModelNotFound(f"model '{model.name}' version {model.version} has no {known}")
        return Response(data, media_type=FILES[known], headers={"Cache-Control": "no-cache"})


_card_routes("/models/{name}")
_card_routes("/models/{name}/versions/{version}")
