"""The HTTP routes by class (service.access.RouteClass), in one place for the middlewares."""

import re

from service.access import RouteClass

OPEN_PATHS = frozenset(
    {"/", "/v2", "/v2/health/live", "/v2/health/ready", "/docs", "/docs/oauth2-redirect",
     "/redoc", "/openapi.json", "/favicon.ico"}
)
OPEN_PREFIX = "/web/"  # the playground's scripts and styles: code, no data
METRICS_PATH = "/metrics"
REPOSITORY_PREFIX = "/v2/repository"         # Triton's model repository extension: admin
CONTROL_PREFIX = "/v2/repository/models/"    # load / unload: off unless admin keys or allowed
INFER_PATH = re.compile(r"^/v2/models/([^/]+)(?:/versions/([^/]+))?/infer$")
STREAM_PATH = re.compile(r"^/v2/models/([^/]+)(?:/versions/([^/]+))?/generate_stream$")


def route_class(path: str) -> RouteClass:
    if path in OPEN_PATHS or path.startswith(OPEN_PREFIX):
        return RouteClass.OPEN
    if path == METRICS_PATH:
        return RouteClass.METRICS
    if path.startswith(CONTROL_PREFIX):
        return RouteClass.CONTROL
    if path.startswith(REPOSITORY_PREFIX):
        return RouteClass.REPOSITORY
    return RouteClass.MODEL


def model_in_path(path: str) -> dict:
    """{name, version} of /v2/models/{name}[/versions/{v}]/... or /v1/models/{name}[:verb]."""
    if not path.startswith(("/v2/models/", "/v1/models/")):
        return {}
    parts = path.split("/")  # ["", "v2", "models", name, "versions", v, ...]
    name = parts[3].split(":", 1)[0]
    version = parts[5] if len(parts) > 5 and parts[4] == "versions" else None
    return {"name": name, "version": version}
