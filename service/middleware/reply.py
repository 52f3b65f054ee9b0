"""Reading request headers from an ASGI scope (answers are rendered by service.protocol.errors)."""


def header(scope, name: bytes) -> bytes | None:
    """The first value of a request header; `name` in lower case, as ASGI gives it."""
    for key, value in scope["headers"]:
        if key == name:
            return value
    return None
