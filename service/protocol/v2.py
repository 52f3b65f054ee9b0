"""Open Inference Protocol (KServe V2) REST routes: health, metadata, infer."""

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from service.dataplane import DataPlane
from service.errors import InvalidInput
from service.protocol import v2_schemas as schemas
from service.protocol.body import receive_body
from service.protocol.responses import JSONResponse
from service.protocol.v2_codec import HEADER_LENGTH, Limits, decode_request, encode_response


# Dependencies are `async def`: FastAPI runs plain `def` ones in a thread pool, a thread hop
# per request for a dictionary lookup.
async def get_dataplane(request: Request) -> DataPlane:
    return request.app.state.dataplane


async def get_limits(request: Request) -> Limits:
    return request.app.state.limits


DataPlaneDep = Annotated[DataPlane, Depends(get_dataplane)]
LimitsDep = Annotated[Limits, Depends(get_limits)]

router = APIRouter(prefix="/v2", default_response_class=JSONResponse, tags=["Open Inference Protocol (V2)"])


@router.get("", response_model=schemas.ServerMetadata, summary="Server metadata")
async def server_metadata(dataplane: DataPlaneDep):
    return dataplane.server_metadata()


@router.get("/health/live", response_model=schemas.Live, summary="Liveness")
async def live():
    return {"live": True}


@router.get(
    "/health/ready", response_model=schemas.Ready, summary="Readiness: every model has loaded or failed",
    responses={503: {"model": schemas.Error}},
)
async def ready(dataplane: DataPlaneDep):
    if not dataplane.ready():
        return JSONResponse({"ready": False, "error": "models are still loading"}, status_code=503)
    return {"ready": True}


def _metadata_routes(path: str) -> None:
    """Each model route exists with and without /versions/{version}."""

    # exclude_unset: a tensor's `parameters` appear only when it has some (an optional input).
    @router.get(
        path, response_model=schemas.ModelMetadata, response_model_exclude_unset=True,
        responses=schemas.ERRORS, summary="Model metadata",
    )
    async def model_metadata(dataplane: DataPlaneDep, name: str, version: str | None = None):
        return dataplane.model_metadata(dataplane.model(name, version))

    @router.get(f"{path}/ready", response_model=schemas.ModelReady, responses=schemas.ERRORS, summary="Model readiness")
    async def model_ready(dataplane: DataPlaneDep, name: str, version: str | None = None):
        dataplane.model(name, version)  # 404 for an unknown model, 503 when not ready
        return {"name": name, "ready": True}

    @router.get(f"{path}/config", responses=schemas.ERRORS, summary="Model configuration (Triton's shape)")
    async def model_config(dataplane: DataPlaneDep, name: str, version: str | None = None):
        return dataplane.model_config(dataplane.model(name, version))

    @router.post(
        f"{path}/infer",
        response_model=schemas.InferenceResponse,
        responses=schemas.ERRORS,
        summary="Inference (JSON, or JSON plus binary tensors)",
        openapi_extra={"requestBody": schemas.INFER_REQUEST_BODY},
    )
    async def infer(request: Request, dataplane: DataPlaneDep, limits: LimitsDep, name: str, version: str | None = None):
        # Served by service.protocol.fast_infer in front of the router; this route documents it
        # and answers when the app is mounted without that front.
        max_bytes = request.app.state.settings.max_request_bytes
        content, headers = await infer_response(request.scope, request.receive, dataplane, limits, max_bytes, name, version)
        return Response(content, headers=headers)


# The request headers the infer route reads, found in one pass over the raw ones (starlette's
# Headers decodes every name for each lookup: a measurable share of a 1-row request).
_CONTENT_TYPE, _CONTENT_ENCODING, _HEADER_LENGTH = b"content-type", b"content-encoding", HEADER_LENGTH.encode()
_READ = frozenset({_CONTENT_TYPE, _CONTENT_ENCODING, _HEADER_LENGTH})


async def infer_response(
    scope, receive, dataplane: DataPlane, limits: Limits, max_bytes: int, name: str, version: str | None
) -> tuple[bytes, dict[str, str]]:
    """One V2 infer call, from the ASGI request to the response body and headers."""
    headers = {}
    for key, value in scope["headers"]:
        if key in _READ and key not in headers:
            headers[key] = value.decode("latin-1")
    body = await receive_body(receive, headers.get(_CONTENT_ENCODING), max_bytes)
    return await infer_body(
        dataplane, limits, name, version, body, headers.get(_CONTENT_TYPE, ""), headers.get(_HEADER_LENGTH)
    )


async def infer_body(
    dataplane: DataPlane, limits: Limits, name: str, version: str | None,
    body: bytes, content_type: str, header_length: str | None,
) -> tuple[bytes, dict[str, str]]:
    """One V2 infer call from its whole (decoded) body: the ASGI route's and the HTTP fast path's
    (service.http_infer) one door to the codec and the DataPlane."""
    # The model is resolved first so an unknown model is a 404 whatever the body holds.
    model = dataplane.model(name, version)
    if content_type.startswith("multipart/"):
        raise InvalidInput(
            "this route takes a V2 inference request: JSON, or JSON followed by binary tensors "
            f"(Inference-Header-Content-Length); upload files to POST /v1/models/{name}:predict"
        )
    parsed = decode_request(body, header_length, limits)
    outputs = await dataplane.infer(model, parsed.inputs, parsed.datatypes, parsed.output_names)
    return encode_response(model.name, str(model.version), outputs, parsed)


_metadata_routes("/models/{name}")
_metadata_routes("/models/{name}/versions/{version}")
