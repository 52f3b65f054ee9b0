"""Errors that carry their HTTP status; one handler in app.py turns them into {"error": ...}."""


class ServiceError(Exception):
    """A fault the client can act on; the message is safe to send back."""

    status_code = 500

    def __init__(self, message: str, *, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.message = message
        self.headers = headers or {}


class InvalidInput(ServiceError):
    status_code = 400


class ModelNotFound(ServiceError):
    status_code = 404


class ModelNotReady(ServiceError):
    status_code = 503


class Overloaded(ServiceError):
    """The queue is full: shed load and tell the client when to come back."""

    status_code = 503

    def __init__(self, message: str, retry_after_s: int = 1):
        super().__init__(message, headers={"Retry-After": str(retry_after_s)})


class PayloadTooLarge(ServiceError):
    status_code = 413


class Unauthorized(ServiceError):
    status_code = 401

    def __init__(self, message: str = "missing or invalid API key"):
        super().__init__(message, headers={"WWW-Authenticate": "Bearer"})


class Forbidden(ServiceError):
    status_code = 403


class RequestTimeout(ServiceError):
    status_code = 504


class ClientTimeout(ServiceError):
    """The client sent its body too slowly; the connection is closed after the answer."""

    status_code = 408

    def __init__(self, message: str):
        super().__init__(message, headers={"Connection": "close"})


class ClientDisconnected(ServiceError):
    """The client left before sending its whole body: nginx's 499, which no one receives."""

    status_code = 499
