"""Read-only model cards for people and the playground: GET /v2/models/{name}[/versions/{v}]/card
and .../files/{samples.png|loss.png}. What they hold is service.cards'."""

from fastapi import APIRouter
from fastapi.responses import Response

from service.cards import FILES
from service.protocol.responses import JSONResponse
from service.protocol.v2 import DataPlaneDep
from service.protocol.v2_schemas import ERRORS

router = APIRouter(prefix="/v2", default_response_class=JSONResponse, tags=["Model cards"])


def _card_routes(path: str) -> None:
    """Each route exists with and without /versions/{version}."""

    @router.get(f"{path}/card", responses=ERRORS, summary="The version's card.json, served config and files")
    async def card(dataplane: DataPlaneDep, name: str, version: str | None = None):
        return await dataplane.card(dataplane.model(name, version))

    @router.get(
        f"{path}/files/{{file}}", responses={200: {"content": {"image/png": {}}}, **ERRORS},
        response_class=Response, summary=f"{' or '.join(FILES)} of the version",
    )
    async def card_file(dataplane: DataPlaneDep, name: str, file: str, version: str | None = None):
        data, media_type = await dataplane.card_file(dataplane.model(name, version), file)
        return Response(data, media_type=media_type, headers={"Cache-Control": "no-cache"})


_card_routes("/models/{name}")
_card_routes("/models/{name}/versions/{version}")
