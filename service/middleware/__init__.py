"""Pure ASGI middlewares (no BaseHTTPMiddleware: it is slow and buffers streamed responses)."""

from starlette.middleware.cors import CORSMiddleware

from service.access import KeyRules
from service.middleware.auth import AuthMiddleware
from service.middleware.body_limit import BodyLimitMiddleware
from service.middleware.request_log import RequestLogMiddleware
from service.middleware.timeout import TimeoutMiddleware

# Headers a browser may send and read: the binary tensor extension's, and the request id.
_CORS_HEADERS = ["Authorization", "Content-Type", "Content-Encoding", "Inference-Header-Content-Length", "X-Request-ID"]


def install(app, settings) -> None:
    """Wrap `app`, outermost first: request id (and log), CORS, auth, body limit, timeout.

    The request id is outermost so that every answer, refusals included, has an id (and a line
    when the access log is on); CORS is outside auth so that preflights (which carry no key) and refusals get CORS headers.
    """
    # Starlette puts the last added outermost, so add from the inside out.
    if settings.request_timeout_s > 0:
        app.add_middleware(TimeoutMiddleware, timeout_s=settings.request_timeout_s)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_request_bytes)
    app.add_middleware(AuthMiddleware, rules=KeyRules.from_settings(settings))
    if settings.cors_allow_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_allow_origins,
            allow_methods=["GET", "POST", "OPTIONS"],
            allow_headers=_CORS_HEADERS,
            expose_headers=["Inference-Header-Content-Length", "X-Request-ID"],
            max_age=600,
        )
    app.add_middleware(RequestLogMiddleware, log_lines=settings.access_log)
