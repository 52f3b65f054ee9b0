"""A JSON response rendered by orjson (numpy arrays included), non-finite floats spelt out."""

from typing import Any

from starlette.responses import JSONResponse as StarletteJSONResponse

from service.json_encoding import dumps


class JSONResponse(StarletteJSONResponse):
    # A JSONResponse subclass, so FastAPI documents routes' response models in /openapi.json;
    # a plain Response subclass made every 200 there {"type": "string"}.

    def render(self, content: Any) -> bytes:
        return dumps(content)
