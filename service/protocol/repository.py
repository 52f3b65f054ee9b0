"""V2 extensions: model repository (index, load, unload) and statistics, in Triton's shapes."""

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

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


@router.post("/repository/index", response_model=list[IndexRow], tags=["Model repository"], summary="Repository index")
async def repository_index(dataplane: DataPlaneDep, body: IndexRequest | None = None):
    return dataplane.repository_index(ready_only=bool(body and body.ready))


@router.post("/repository/models/{name}/load", tags=["Model repository"], responses=ERRORS, summary="Load or reload a model")
async def load_model(dataplane: DataPlaneDep, name: str, body: LoadRequest | None = None):
    await dataplane.load(name, body.parameters if body else None)
    return {}


@router.post("/repository/models/{name}/unload", tags=["Model repository"], responses=ERRORS, summary="Unload a model")
async def unload_model(dataplane: DataPlaneDep, name: str, body: LoadRequest | None = None):
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


