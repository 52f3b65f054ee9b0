"""The hot path: V2 infer answered straight from ASGI, in front of FastAPI's router.

Routing, dependency injection and the exception middlewares cost more per request than a
small model's inference; this front matches the infer path itself and runs the same code as
the documented route (`v2.infer_response`), with the same `{"error": ...}` answers. Everything
else passes through to the app. Under uvicorn most infer calls do not reach ASGI at all:
service.http_infer answers them from the HTTP protocol with what `InferSettings` holds.
"""

from service.access import KeyRules, RouteClass
from service.middleware.routes import INFER_PATH
from service.protocol.errors import render
from service.protocol.v2 import infer_response


class InferSettings:
    """What answering an infer call takes besides the request, for the HTTP fast path: built
    once by create_app, kept on `app.state.infer`."""

    def __init__(self, state, settings):
        self.dataplane = None  # set by the lifespan while it runs
        self.limits = state.limits
        self.max_bytes = settings.max_request_bytes
        self.rules = KeyRules.from_settings(settings)
        # Whether infer routes need no key at all (RouteClass.MODEL: every infer path's class):
        # then the fast path asks the rules nothing per request.
        self.models_open = self.rules.refusal(RouteClass.MODEL, None) is None
        self.timeout_s = settings.request_timeout_s
        self.access_log = settings.access_log
        self.cors = bool(settings.cors_allow_origins)


class FastInfer:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        match = INFER_PATH.match(scope["path"]) if scope["type"] == "http" and scope["method"] == "POST" else None
        if match is None:
            await self.app(scope, receive, send)
            return
        state = scope["app"].state
        try:
            body, headers = await infer_response(
                scope, receive, state.dataplane, state.limits, state.settings.max_request_bytes, match[1], match[2]
            )
            status = 200
            raw_headers = [(k.encode(), v.encode()) for k, v in headers.items()]
            raw_headers.append((b"content-length", str(len(body)).encode()))
        except Exception as exc:  # noqa: BLE001  (rendered: a logged 500 unless a ServiceError)
            status, body, raw_headers = render(exc, f"POST {scope['path']}")
        await send({"type": "http.response.start", "status": status, "headers": raw_headers})
        await send({"type": "http.response.body", "body": body})
