"""generate and generate_stream answered straight from ASGI, in front of FastAPI's router, as
fast_infer.py answers V2 infer: routing, dependency injection and the exception middlewares
cost more per request than a whole translation's decoder steps shared with 15 others
(docs/BENCHMARKS.md). It runs the documented routes' own steps (the model, the body, the plan,
then the events of generate_events.stream, or the done document) with the same `{"error": ...}`
answers. Everything else passes through, and so does a generate call that asks for the grid
PNG (`Accept: image/png`: the route's own handling, before its body is read).
"""

import re

from starlette.requests import Request

from service.json_encoding import dumps
from service.protocol.errors import send_error
from service.protocol.generate_events import done_document, stream
from service.protocol.v1 import read_task_body

GENERATE_PATH = re.compile(r"^/v2/models/([^/]+)(?:/versions/([^/]+))?/generate(_stream)?$")
_JSON = (b"content-type", b"application/json")


class FastGenerateStream:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        match = None
        if scope["type"] == "http" and scope["method"] == "POST" and "/generate" in scope["path"]:
            match = GENERATE_PATH.match(scope["path"])
            if match is not None and not match[3] and _accepts_png(scope):
                match = None
        if match is None:
            await self.app(scope, receive, send)
            return
        dataplane = scope["app"].state.dataplane
        try:
            model = dataplane.model(match[1], match[2])  # 404 for an unknown model, whatever the body
            params = await read_task_body(Request(scope, receive))
            if match[3]:
                plan, events = dataplane.generate_stream(model, params)  # 400s happen here
            else:
                plan, generation = await dataplane.generate(model, params)
                body = dumps(done_document(model, plan.format, generation))
        except Exception as exc:  # noqa: BLE001  (rendered: a logged 500 unless a ServiceError)
            await send_error(send, exc, f"POST {scope['path']}")
            return
        if match[3]:
            await stream(receive, send, model, plan.format, events)
            return
        await send({"type": "http.response.start", "status": 200,
                    "headers": [_JSON, (b"content-length", b"%d" % len(body))]})
        await send({"type": "http.response.body", "body": body})


def _accepts_png(scope) -> bool:
    """Accept: image/png asks the generate route for the grid itself: the app answers it."""
    return any(k == b"accept" and b"image/png" in v for k, v in scope["headers"])
