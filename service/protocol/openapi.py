"""The OpenAPI document as the service really answers: FastAPI's, corrected and completed.

FastAPI declares a 422 on every route with parameters, but the service answers validation
errors with a 400 `{"error": ...}`; and the middlewares wrapped around every route answer
statuses that no route declares (auth, body limit, timeouts). Both are written in here, so
that /openapi.json lists what a client can get back and schemathesis can hold us to it.
"""

from fastapi import FastAPI

from service.middleware.routes import OPEN_PATHS, REPOSITORY_PREFIX
from service.protocol.v2_schemas import Error, extra_components

_ERROR = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}

# status: (description, applies to (path, method))
_MIDDLEWARE_ANSWERS = {
    "400": ("the request is malformed", lambda path, op: "422" in op["responses"]),
    "401": ("missing or unknown API key (when keys are set)", lambda path, op: path not in OPEN_PATHS),
    "403": ("an API key where an admin key is needed, or model control disabled",
            lambda path, op: path.startswith(REPOSITORY_PREFIX)),
    "408": ("the request body did not arrive within the request timeout", lambda path, op: "requestBody" in op),
    "413": ("the request body is over the size limit", lambda path, op: True),
    "504": ("no response started within the request timeout", lambda path, op: True),
}


def install(app: FastAPI) -> None:
    """Make app.openapi() build the corrected document once, and keep it."""
    build = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            app.openapi_schema = _corrected(build())
        return app.openapi_schema

    app.openapi = openapi


def _corrected(document: dict) -> dict:
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas.update(extra_components())
    schemas.setdefault("Error", Error.model_json_schema())
    for path, operations in document.get("paths", {}).items():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            for status, (description, applies) in _MIDDLEWARE_ANSWERS.items():
                if status not in responses and applies(path, operation):
                    responses[status] = {"description": description, "content": _ERROR}
            responses.pop("422", None)  # never sent: validation errors are 400s
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    return document
