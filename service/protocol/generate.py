"""Triton's generate extension for generative models: POST /v2/models/{name}[/versions/{v}]/generate
and /generate_stream (server-sent events, one JSON object per `data:` line, as Triton sends them)."""

import logging

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse

from service.errors import InvalidInput, ServiceError
from service.imaging import b64, grid_png, png
from service.json_encoding import dumps
from service.protocol import generate_schemas as schemas
from service.protocol.errors import error_document
from service.protocol.generate_text import text_done, text_event
from service.protocol.responses import JSONResponse
from service.protocol.task_schemas import ERRORS
from service.protocol.v1 import read_task_body
from service.protocol.v2 import DataPlaneDep
from service.tasks.generative import Generation, Progress, Sample
from service.tasks.translation import TextGeneration, Token

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v2", default_response_class=JSONResponse, tags=["Generate extension"])

_PNG_RESPONSE = {200: {"content": {"image/png": {}}, "description": "samples; with Accept: image/png, the grid PNG itself"}}


def _wants_png(request: Request, params: dict) -> bool:
    """Accept: image/png asks for the grid itself (curl -o grid.png), so the format is png."""
    if "image/png" not in request.headers.get("accept", ""):
        return False
    if params.get("format", "png") != "png":
        raise InvalidInput("Accept: image/png returns the grid PNG; drop format or make it \"png\"")
    params["format"] = "png"
    return True


def _generate_routes(path: str) -> None:
    """Each route exists with and without /versions/{version}."""

    @router.post(
        f"{path}/generate", response_model=schemas.GenerateResponse,
        responses={**_PNG_RESPONSE, **ERRORS}, summary="Generate samples",
        openapi_extra=schemas.GENERATE_BODY,
    )
    async def generate(request: Request, dataplane: DataPlaneDep, name: str, version: str | None = None):
        model = dataplane.model(name, version)  # 404 for an unknown model, whatever the body holds
        params = await read_task_body(request)
        grid_only = _wants_png(request, params)
        plan, generation = await dataplane.generate(model, params)
        if grid_only:
            return Response(grid_png(_ink(model, generation.samples)), media_type="image/png")
        return JSONResponse(_done(model, plan.format, generation))

    @router.post(
        f"{path}/generate_stream", response_model=schemas.GenerateResponse,
        responses={200: {"content": {"text/event-stream": {}}, "description": "server-sent events"}, **ERRORS},
        summary="Generate samples, streaming progress as server-sent events",
        openapi_extra=schemas.STREAM_BODY,
    )
    async def generate_stream(request: Request, dataplane: DataPlaneDep, name: str, version: str | None = None):
        model = dataplane.model(name, version)
        params = await read_task_body(request)
        plan, events = dataplane.generate_stream(model, params)  # 400s happen here
        # When the client disconnects, Starlette cancels this iterator at its current await, so
        # the sampling loop stops there and runs no further graph call.
        return StreamingResponse(
            _server_sent(model, plan.format, events), media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )


_generate_routes("/models/{name}")
_generate_routes("/models/{name}/versions/{version}")


async def _server_sent(model, fmt: str, events):
    try:
        async for event in events:
            yield _sse(_event(model, fmt, event))
    except Exception as exc:  # the stream has started: the error is its last event
        if not isinstance(exc, ServiceError):
            log.exception("generate_stream of model %s failed", model.name)
        yield _sse(error_document(exc))


def _sse(document: dict) -> bytes:
    return b"data: " + dumps(document) + b"\n\n"


def _event(model, fmt: str, event) -> dict:
    if isinstance(event, Token | TextGeneration):  # sequence models: Triton's text shape
        return text_event(model, event, fmt == "attention")
    if isinstance(event, Generation):
        return {**_done(model, fmt, event), "event": "done"}
    head = {"model_name": model.name, "model_version": str(model.version)}
    if isinstance(event, Progress):
        return {**head, "event": "progress", "step": event.step, "steps": event.steps,
                **_samples(model, fmt, event.samples)}
    if isinstance(event, Sample):
        sample = b64(png(_ink(model, event.sample[None])[0])) if fmt == "png" else event.sample
        return {**head, "event": "sample", "index": event.index, "sample": sample}
    raise TypeError(f"unknown event {type(event).__name__}")


def _done(model, fmt: str, generation: Generation) -> dict:
    if isinstance(generation, TextGeneration):
        return text_done(model, generation)
    return {"model_name": model.name, "model_version": str(model.version), "seed": generation.seed,
            **generation.facts, **_samples(model, fmt, generation.samples)}


def _samples(model, fmt: str, samples) -> dict:
    """array: (N, *shape) raw units; png: a PNG per sample and a grid of all, in base64."""
    if fmt != "png":
        return {"samples": samples}
    ink = _ink(model, samples)
    return {"samples": [b64(png(image)) for image in ink], "grid": b64(grid_png(ink))}


def _ink(model, samples):
    """Samples (N, *shape) in raw units as images (N, H, W) of ink in [0, 1]."""
    image = model.units.image
    return model.units.ink(samples).reshape(len(samples), image.height, image.width)
