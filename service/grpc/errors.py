"""The one gRPC rendering of errors: the kind's status code (service/errors.py) and message."""

import logging

import grpc

from service.errors import INTERNAL_MESSAGE, ServiceError

log = logging.getLogger(__name__)

# HTTP headers an error carries that mean something to a gRPC client too, sent as trailers.
_TRAILERS = {"retry-after", "www-authenticate"}


def status_of(exc: BaseException, where: str = "") -> tuple[grpc.StatusCode, str, tuple]:
    """(code, message, trailing metadata) for `exc`; anything but a ServiceError is a logged
    INTERNAL with a generic message."""
    if isinstance(exc, ServiceError):
        trailers = tuple((k.lower(), v) for k, v in exc.headers.items() if k.lower() in _TRAILERS)
        return grpc.StatusCode[exc.grpc_code], exc.message, trailers
    log.error("unhandled error on %s", where or "a gRPC call", exc_info=exc)
    return grpc.StatusCode.INTERNAL, INTERNAL_MESSAGE, ()
