"""inference.GRPCInferenceService: each RPC parses its message, calls DataPlane, builds the reply.

`_call` wraps every RPC with what the HTTP middlewares do for routes: the request id, the API
key rules of its route class, the request timeout, one rendering of errors, one log line.
"""

import asyncio
import functools
import logging
import time

import grpc
from google.protobuf import json_format

from service import access_log
from service.access import KeyRules, RouteClass
from service.dataplane import DataPlane
from service.errors import INTERNAL_MESSAGE, InvalidInput, RequestTimeout, ServiceError
from service.grpc import infer_wire
from service.grpc.codec import decode_request, encode_response, parameters, set_parameter
from service.grpc.deadlines import Deadlines
from service.grpc.errors import status_of
from service.grpc.protocol import SERVICE_NAME, config_pb, pb
from service.middleware.request_log import request_id_from
from service.protocol.v2_codec import Limits
from service.signature import check_outputs

log = logging.getLogger(__name__)

# Parameters that tritonclient sets for Triton's scheduler, not for the model's generation.
_SCHEDULER_PARAMETERS = {"sequence_id", "sequence_start", "sequence_end", "priority", "timeout"}


class Malformed:
    """What the lenient deserializer hands over for bytes that are not the RPC's message."""

    def __init__(self, error: str):
        self.error = error


def _metadata(context) -> tuple[str | bytes | None, str | bytes | None]:
    """The call's (x-request-id, authorization), the last of each as a dict of them kept, in one
    pass over its metadata (no dict per call: these two keys are all that is read)."""
    request_id = authorization = None
    for key, value in context.invocation_metadata() or ():
        if key == "x-request-id":
            request_id = value
        elif key == "authorization":
            authorization = value
    return request_id, authorization


def _request_id(given: str | bytes | None, context) -> str:
    """The client's x-request-id when sane, else a new one; sent back as a trailer."""
    request_id = request_id_from(given.encode() if isinstance(given, str) else given)
    context.set_trailing_metadata((("x-request-id", request_id),))
    return request_id


def _admit(servicer: "InferenceServicer", route: RouteClass, request, authorization: str | bytes | None) -> None:
    """The checks every RPC passes first; raises a ServiceError."""
    if route not in servicer.keyless:
        refusal = servicer.rules.refusal(route, authorization.encode() if isinstance(authorization, str) else authorization)
        if refusal is not None:
            raise refusal
    if isinstance(request, Malformed):
        raise InvalidInput(f"malformed protobuf: {request.error}")


def _log(servicer, method: str, request_id: str, model: tuple, code: grpc.StatusCode, started: float) -> None:
    if servicer.log_requests:  # the same line, written the same cheap way, as HTTP's
        access_log.request({
            "request_id": request_id, "protocol": "grpc", "method": "POST",
            "path": f"/{SERVICE_NAME}/{method}", "model": model[0] or None, "version": model[1] or None,
            "status": code.name, "duration_ms": round((time.perf_counter() - started) * 1000, 3),
        })


def _model_of(request) -> tuple[str, str]:
    name = getattr(request, "model_name", None) or getattr(request, "name", "")
    return name, getattr(request, "model_version", None) or getattr(request, "version", "")


def unary(route: RouteClass):
    """Wrap a unary RPC `async def X(self, request, context) -> reply`."""

    def wrap(method):
        @functools.wraps(method)
        async def call(self: "InferenceServicer", request, context):
            started, request_id, code = time.perf_counter(), "", grpc.StatusCode.OK
            try:
                given_id, authorization = _metadata(context)
                request_id = _request_id(given_id, context)
                _admit(self, route, request, authorization)
                if self.deadlines is None:  # no request timeout
                    return await method(self, request, context)
                task = self.deadlines.start()
                try:
                    return await method(self, request, context)
                except asyncio.CancelledError:
                    if not self.deadlines.end(task):
                        raise
                    task.uncancel()  # the cancellation was the timeout's, rendered below
                    raise TimeoutError from None
                finally:
                    self.deadlines.end(task)
            except asyncio.CancelledError:
                code = grpc.StatusCode.CANCELLED  # the client left, or its deadline passed
                raise
            except TimeoutError:
                code = grpc.StatusCode.DEADLINE_EXCEEDED
                error = RequestTimeout(f"request did not complete within {self.timeout_s:g} s")
                await context.abort(code, error.message)
            except ServiceError as exc:
                code, message, trailers = status_of(exc)
                await context.abort(code, message, trailers + (("x-request-id", request_id),))
            except Exception as exc:  # noqa: BLE001  (a logged INTERNAL, never a traceback sent)
                code, message, _ = status_of(exc, method.__name__)
                await context.abort(code, message)
            finally:
                if self.log_requests:  # what the line names is looked up only when it is written
                    _log(self, method.__name__, request_id,
                         _model_of(None if isinstance(request, Malformed) else request), code, started)

        return call

    return wrap


class InferenceServicer:
    """The RPCs, one method each; RPCs not defined here answer UNIMPLEMENTED (shared memory,
    trace and log settings)."""

    def __init__(self, dataplane: DataPlane, rules: KeyRules, limits: Limits, timeout_s: float, log_requests: bool = True):
        self.dataplane = dataplane
        self.rules = rules
        # The route classes a call without a key may use: the rules refuse a call only for want
        # of a (right) key, or whatever its key (model control turned off), so these pass every call.
        self.keyless = frozenset(route for route in RouteClass if rules.refusal(route, None) is None)
        self.limits = limits
        self.plans = infer_wire.Plans(limits)
        self.timeout_s = timeout_s or None
        self.deadlines = Deadlines(timeout_s) if timeout_s else None
        self.log_requests = log_requests  # --no-access-log turns gRPC's lines off too

    # ------------------------------------------------------------------ health and metadata
    @unary(RouteClass.OPEN)
    async def ServerLive(self, request, context):
        return pb.ServerLiveResponse(live=True)

    @unary(RouteClass.OPEN)
    async def ServerReady(self, request, context):
        return pb.ServerReadyResponse(ready=self.dataplane.ready())

    @unary(RouteClass.OPEN)
    async def ServerMetadata(self, request, context):
        return pb.ServerMetadataResponse(**self.dataplane.server_metadata())

    @unary(RouteClass.MODEL)
    async def ModelReady(self, request, context):
        # A yes or no, as tritonclient's HTTP is_model_ready gives for an unknown model too.
        try:
            ready = self.dataplane.model_ready(request.name, request.version or None)
        except ServiceError:
            ready = False
        return pb.ModelReadyResponse(ready=ready)

    @unary(RouteClass.MODEL)
    async def ModelMetadata(self, request, context):
        metadata = self.dataplane.model_metadata(self.dataplane.model(request.name, request.version or None))
        return json_format.ParseDict(metadata, pb.ModelMetadataResponse(), ignore_unknown_fields=True)

    @unary(RouteClass.MODEL)
    async def ModelConfig(self, request, context):
        config = self.dataplane.model_config(self.dataplane.model(request.name, request.version or None))
        return pb.ModelConfigResponse(config=json_format.ParseDict(config, config_pb.ModelConfig()))

    @unary(RouteClass.MODEL)
    async def ModelStatistics(self, request, context):
        stats = self.dataplane.statistics(request.name or None, request.version or None)
        return json_format.ParseDict({"model_stats": stats}, pb.ModelStatisticsResponse())

    # ------------------------------------------------------------------ inference
    @unary(RouteClass.MODEL)
    async def ModelInfer(self, request, context):
        # `request` is its bytes (infer_wire.InferBytes): a header seen before is not parsed again,
        # and the answer leaves as bytes.
        read = infer_wire.Read(request, self.plans)
        model = self.dataplane.model(read.model_name, read.model_version or None)
        decoded = read.decode()
        outputs = await self.dataplane.infer(model, decoded.inputs, decoded.datatypes, decoded.output_names)
        return infer_wire.encode_response(model.name, str(model.version), outputs, read.id)

    async def ModelStreamInfer(self, requests, context):
        """Each request's answers in turn: a generator's events (the last one marked
        triton_final_response), or one response for any other model. A failed request is an
        `error_message` on the stream, which goes on, as Triton does."""
        started, request_id, code = time.perf_counter(), "", grpc.StatusCode.OK
        try:
            given_id, authorization = _metadata(context)
            request_id = _request_id(given_id, context)
            _admit(self, RouteClass.MODEL, None, authorization)
            async for request in requests:
                try:
                    async for response in self._stream_one(request):
                        yield pb.ModelStreamInferResponse(infer_response=response)
                except Exception as exc:  # noqa: BLE001  (reported on the stream, which goes on)
                    yield pb.ModelStreamInferResponse(error_message=_stream_error(exc))
        except ServiceError as exc:
            code, message, trailers = status_of(exc)
            await context.abort(code, message, trailers)
        except asyncio.CancelledError:
            code = grpc.StatusCode.CANCELLED  # the client left: the generation stopped where it was
            raise
        finally:
            _log(self, "ModelStreamInfer", request_id, ("", ""), code, started)

    async def _stream_one(self, request):
        if isinstance(request, Malformed):
            raise InvalidInput(f"malformed protobuf: {request.error}")
        model = self.dataplane.model(request.model_name, request.model_version or None)
        decoded = decode_request(request, self.limits)
        version = str(model.version)
        if not model.streams:
            outputs = await self.dataplane.infer(model, decoded.inputs, decoded.datatypes, decoded.output_names)
            response = encode_response(pb.ModelInferResponse(), model.name, version, outputs, request.id)
            set_parameter(response.parameters, "triton_final_response", True)
            yield response
            return
        check_outputs(model.outputs, decoded.output_names)
        options = {k: v for k, v in decoded.parameters.items()
                   if k not in _SCHEDULER_PARAMETERS and not k.startswith("triton_")}
        _, events = self.dataplane.generate_stream_from_tensors(model, decoded.inputs, decoded.datatypes, options)
        async for event in events:
            tensors = event.tensors()
            if decoded.output_names:
                tensors = {n: tensors[n] for n in decoded.output_names if n in tensors}
            response = encode_response(pb.ModelInferResponse(), model.name, version, tensors, request.id)
            for key, value in event.parameters().items():
                set_parameter(response.parameters, key, value)
            set_parameter(response.parameters, "triton_final_response", bool(event.final))
            yield response

    # ------------------------------------------------------------------ repository extension
    @unary(RouteClass.REPOSITORY)
    async def RepositoryIndex(self, request, context):
        rows = self.dataplane.repository_index(ready_only=request.ready)
        return json_format.ParseDict({"models": rows}, pb.RepositoryIndexResponse())

    @unary(RouteClass.CONTROL)
    async def RepositoryModelLoad(self, request, context):
        await self.dataplane.load(request.model_name, parameters(request.parameters))
        return pb.RepositoryModelLoadResponse()

    @unary(RouteClass.CONTROL)
    async def RepositoryModelUnload(self, request, context):
        await self.dataplane.unload(request.model_name)
        return pb.RepositoryModelUnloadResponse()


def _stream_error(exc: Exception) -> str:
    if isinstance(exc, ServiceError):
        return exc.message
    log.error("ModelStreamInfer failed", exc_info=exc)
    return INTERNAL_MESSAGE
