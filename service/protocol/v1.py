"""KServe V1 task endpoints: POST /v1/models/{name}[/versions/{v}]:predict, :explain and :reconstruct.

The body is {"instances": [...], <task parameters>} as JSON, or a multipart form whose files
are the instances (images) and whose other fields are parameters.
"""

from fastapi import APIRouter, HTTPException, Request
from starlette.datastructures import UploadFile

from service.errors import InvalidInput
from service.protocol import task_schemas as schemas
from service.protocol.body import read_body, read_json_object
from service.protocol.responses import JSONResponse
from service.protocol.v2 import DataPlaneDep

router = APIRouter(prefix="/v1", default_response_class=JSONResponse, tags=["Task endpoints (KServe V1)"])

MAX_FORM_FILES = 256


async def read_task_body(request: Request) -> dict:
    """A task request's JSON object, or a multipart form turned into the same shape."""
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        return await _form(request, await read_body(request, request.app.state.settings.max_request_bytes))
    return await read_json_object(request)


async def _form(request: Request, body: bytes) -> dict:
    async def replay() -> dict:  # the body was read (within its limit) already
        return {"type": "http.request", "body": body, "more_body": False}

    instances, params = [], {}
    async with Request(request.scope, replay).form(max_files=MAX_FORM_FILES) as form:
        for key, value in form.multi_items():
            if isinstance(value, UploadFile):
                instances.append(await value.read())  # bytes: parsed as an image by the task
            else:  # form fields are text: an integer parameter such as top_k arrives as "5"
                params[key] = _integer_or_text(value)
    if not instances:
        raise InvalidInput("a multipart request needs at least one image file")
    return {"instances": instances, **params}


def _integer_or_text(value: str) -> int | str:
    # Only plain ASCII integers: "³" and "--5" passed an isdigit() test that int() then
    # refused, a 500 (found writing bench/fuzz_parsers.py); and int() reads what was tested:
    # str.strip() takes "\x1e" for a space, int() does not (found by the fuzzer).
    text = value.strip()
    digits = text.removeprefix("-")
    return int(text) if digits.isascii() and digits.isdigit() and len(digits) <= 18 else value


def _task_routes(path: str) -> None:
    """Each route exists with and without /versions/{version}."""

    @router.post(
        f"{path}:predict", response_model=schemas.PredictResponse, responses=schemas.ERRORS,
        summary="Predict: label, value, log-density or latent code per instance",
        openapi_extra=schemas.PREDICT_BODY,
    )
    async def predict(request: Request, dataplane: DataPlaneDep, name: str, version: str | None = None):
        model = dataplane.model(name, version)  # 404 for an unknown model, whatever the body holds
        body = await read_task_body(request)
        predictions = await dataplane.predict(model, body)
        return JSONResponse({"predictions": predictions})

    @router.post(
        f"{path}:explain", response_model=schemas.ExplainResponse, responses=schemas.ERRORS,
        summary="Explain: Shapley values of every input pixel or feature, per instance",
        openapi_extra=schemas.EXPLAIN_BODY,
    )
    async def explain(request: Request, dataplane: DataPlaneDep, name: str, version: str | None = None):
        model = dataplane.model(name, version)
        body = await read_task_body(request)
        explanations = await dataplane.explain(model, body)
        return JSONResponse({"explanations": explanations})

    @router.post(
        f"{path}:reconstruct", response_model=schemas.ReconstructResponse, responses=schemas.ERRORS,
        summary="VAE: decode each instance's latent mean", openapi_extra=schemas.RECONSTRUCT_BODY,
    )
    async def reconstruct(request: Request, dataplane: DataPlaneDep, name: str, version: str | None = None):
        model = dataplane.model(name, version)
        body = await read_task_body(request)
        predictions = await dataplane.predict(model, body, reconstruct=True)
        return JSONResponse({"predictions": predictions})


_task_routes("/models/{name}")
_task_routes("/models/{name}/versions/{version}")


def _slash_hint(path: str, endpoint: str) -> None:
    """/v1/models/m/predict is a common slip for /v1/models/m:predict: a 404 that says so."""

    @router.api_route(f"{path}/{endpoint}", methods=["GET", "POST"], include_in_schema=False)
    async def hint(request: Request):
        meant = request.url.path.removesuffix(f"/{endpoint}") + f":{endpoint}"
        raise HTTPException(404, f"no route {request.url.path}: the task endpoints take a colon, POST {meant}")


for _path in ("/models/{name}", "/models/{name}/versions/{version}"):
    for _endpoint in ("predict", "explain", "reconstruct"):
        _slash_hint(_path, _endpoint)
