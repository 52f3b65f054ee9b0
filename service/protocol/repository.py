"""V2 extensions: model repository (index, load, unload) and statistics, in Triton's shapes."""

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from service.protocol.body import body_schema, read_model
from service.protocol.responses import JSONResponse
from service.protocol.v2 import DataPlaneDep
from service.protocol.v2_schemas import ERRORS

router = APIRouter(prefix="/v2", default_response_class=JSONResponse)


class IndexRequest(BaseModel):
    # Strict, as the document says: {"ready": 0} or "yes" is a 400, not a guess.
    model_config = ConfigDict(strict=True)

    ready: bool = Field(False, description="only the versions that are ready")


class IndexRow(BaseModel):
    name: str
    version: str
    state: str = Field(description="READY or UNAVAILABLE")
    reason: str


class LoadRequest(BaseModel):
    parameters: dict[str, Any] | None = None


# The bodies are read by read_model, not declared as parameters: FastAPI reads a body as JSON
# only when its Content-Type says so, and tritonclient's load and unload send none.
@router.post(
    "/repository/index", response_model=list[IndexRow], tags=["Model repository"], summary="Repository index",
    responses={400: ERRORS[400]}, openapi_extra=body_schema(IndexRequest),
)
async def repository_index(request: Request, dataplane: DataPlaneDep):
    body = await read_model(request, IndexRequest)
    return dataplane.repository_index(ready_only=body.ready)


@router.post(
    "/repository/models/{name}/load", tags=["Model repository"], responses=ERRORS, summary="Load or reload a model",
    openapi_extra=body_schema(LoadRequest),
)
async def load_model(request: Request, dataplane: DataPlaneDep, name: str):
    await dataplane.load(name, (await read_model(request, LoadRequest)).parameters)
    return {}


@router.post(
    "/repository/models/{name}/unload", tags=["Model repository"], responses=ERRORS, summary="Unload a model",
    openapi_extra=body_schema(LoadRequest),
)
async def unload_model(request: Request, dataplane: DataPlaneDep, name: str):
    await read_model(request, LoadRequest)  # a malformed body is a 400 here too
    await dataplane.unload(name)
    return {}


@router.get("/models/stats", tags=["Statistics"], summary="Statistics of every loaded model version")
async def all_stats(dataplane: DataPlaneDep):
    return {"model_stats": dataplane.statistics()}


@router.get("/models/{name}/stats", tags=["Statistics"], responses=ERRORS, summary="Statistics of a model")
async def model_stats(dataplane: DataPlaneDep, name: str):
    return {"model_stats": dataplane.statistics(name)}


@router.get("/models/{name}/versions/{version}/stats", tags=["Statistics"], responses=ERRORS, summary="Statistics of a version")
async def version_stats(dataplane: DataPlaneDep, name: str, version: str):
    return {"model_stats": dataplane.statistics(name, version)}


