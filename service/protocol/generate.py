"""Triton's generate extension for generative models: POST /v2/models/{name}[/versions/{v}]/generate
and /generate_stream (server-sent events, one JSON object per `data:` line, as Triton sends them)."""

from fastapi import APIRouter, Request
from fastapi.responses import Response

from service.errors import InvalidInput
from service.imaging import grid_png
from service.protocol import generate_schemas as schemas
from service.protocol.generate_events import EventStream, done_document, ink
from service.protocol.responses import JSONResponse
from service.protocol.task_schemas import ERRORS
from service.protocol.v1 import read_task_body
from service.protocol.v2 import DataPlaneDep

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
            return Response(grid_png(ink(model, generation.samples)), media_type="image/png")
        return JSONResponse(done_document(model, plan.format, generation))

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
        # When the client disconnects, the stream is cancelled at its current await, so the
        # sampling loop stops there and runs no further graph call. (The front in
        # generate_front.py answers this path before FastAPI routes it; this route is its
        # documentation, and the answer for an app mounted without that front.)
        return EventStream(model, plan.format, events)


_generate_routes("/models/{name}")
_generate_routes("/models/{name}/versions/{version}")
