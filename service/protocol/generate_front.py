"""generate_stream answered straight from ASGI, in front of FastAPI's router, as fast_infer.py
answers V2 infer: routing, dependency injection and the exception middlewares cost more per
request than a whole translation's decoder steps shared with 15 others (docs/BENCHMARKS.md).
It runs the documented route's own steps (the model, the body, the plan, then the events of
generate_events.stream) with the same `{"error": ...}` answers. Everything else passes through.
"""

from starlette.requests import Request

from service.middleware.routes import STREAM_PATH
from service.protocol.errors import send_error
from service.protocol.generate_events import stream
from service.protocol.v1 import read_task_body


class FastGenerateStream:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        match = None
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"].endswith("/generate_stream"):
            match = STREAM_PATH.match(scope["path"])
        if match is None:
            await self.app(scope, receive, send)
            return
        dataplane = scope["app"].state.dataplane
        try:
            model = dataplane.model(match[1], match[2])  # 404 for an unknown model, whatever the body
            params = await read_task_body(Request(scope, receive))
            plan, events = dataplane.generate_stream(model, params)  # 400s happen here
        except Exception as exc:  # noqa: BLE001  (rendered: a logged 500 unless a ServiceError)
            await send_error(send, exc, f"POST {scope['path']}")
            return
        await stream(receive, send, model, plan.format, events)
