"""The one table of error kinds: each knows its HTTP status and its gRPC status code.

Every transport renders these in one place (HTTP: service/protocol/errors.py; gRPC:
service/grpc/errors.py). gRPC codes are named by their `grpc.StatusCode` member, so the core
never imports grpc.
"""


class ServiceError(Exception):
    """A fault the client can act on; the message is safe to send back."""

    status_code = 500
    grpc_code = "INTERNAL"

    def __init__(self, message: str, *, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.message = message
        self.headers = headers or {}


class InvalidInput(ServiceError):
    status_code, grpc_code = 400, "INVALID_ARGUMENT"


class NotFound(ServiceError):
    """No such thing to serve: a playground file, a card's file."""

    status_code, grpc_code = 404, "NOT_FOUND"


class ModelNotFound(NotFound):
    pass


class ModelNotReady(ServiceError):
    status_code, grpc_code = 503, "UNAVAILABLE"


class Overloaded(ServiceError):
    """The queue is full: shed load and tell the client when to come back."""

    status_code, grpc_code = 503, "RESOURCE_EXHAUSTED"

    def __init__(self, message: str, retry_after_s: int = 1):
        super().__init__(message, headers={"Retry-After": str(retry_after_s)})


class PayloadTooLarge(ServiceError):
    status_code, grpc_code = 413, "RESOURCE_EXHAUSTED"


def too_large(limit: int, size: int | None = None) -> PayloadTooLarge:
    """The one wording of a request over the size limit, for every transport."""
    if size is None:
        return PayloadTooLarge(f"request body is over the limit of {limit} bytes")
    return PayloadTooLarge(f"request body of {size} bytes is over the limit of {limit} bytes")


class Unauthorized(ServiceError):
    status_code, grpc_code = 401, "UNAUTHENTICATED"

    def __init__(self, message: str = "missing or invalid API key"):
        super().__init__(message, headers={"WWW-Authenticate": "Bearer"})


class Forbidden(ServiceError):
    """A valid key that may not do this (an API key where an admin key is needed)."""

    status_code, grpc_code = 403, "PERMISSION_DENIED"


class ModelControlDisabled(ServiceError):
    """Load and unload are off: the control mode, or no admin keys on an untrusted network."""

    status_code, grpc_code = 403, "FAILED_PRECONDITION"


class RequestTimeout(ServiceError):
    status_code, grpc_code = 504, "DEADLINE_EXCEEDED"


class ClientTimeout(ServiceError):
    """The client sent its body too slowly; the connection is closed after the answer."""

    status_code, grpc_code = 408, "DEADLINE_EXCEEDED"

    def __init__(self, message: str):
        super().__init__(message, headers={"Connection": "close"})


class ClientDisconnected(ServiceError):
    """The client left before sending its whole body: nginx's 499, which no one receives."""

    status_code, grpc_code = 499, "CANCELLED"


INTERNAL_MESSAGE = "internal server error"  # what a client sees of a fault of ours
