"""A JSON response rendered by orjson (numpy arrays included)."""

from typing import Any

import orjson
from starlette.responses import JSONResponse as StarletteJSONResponse


class JSONResponse(StarletteJSONResponse):
    # A JSONResponse subclass, so FastAPI documents routes' response models in /openapi.json;
    # a plain Response subclass made every 200 there {"type": "string"}.

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)
