"""The gRPC server: started in the app's lifespan; its RPCs run as coroutines on the event loop
that serves HTTP, so both transports share the DataPlane, its batchers, metrics and statistics.

grpcio's synchronous server takes the calls (a pool thread each, waiting while its coroutine runs
on the loop: service/grpc/bridge.py), not grpc.aio: on one core a 64-row ModelInfer with 64 in
flight costs 130–200 µs less of server CPU, and calls that wait meanwhile are batched
(docs/BENCHMARKS.md).

With --workers N every worker process binds the gRPC port too, with SO_REUSEPORT, and the kernel
spreads connections over them as it does for HTTP's shared socket. One process alone binds
without it, so a second server on the same port fails to start instead of silently sharing.
"""

import asyncio
import logging
from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from service.access import KeyRules
from service.dataplane import DataPlane
from service.grpc import bridge
from service.grpc.infer_wire import InferBytes
from service.grpc.lifecycle import Lifecycle, serving_statuses
from service.grpc.protocol import SERVICE, SERVICE_NAME, pb
from service.grpc.servicer import InferenceServicer, Malformed
from service.protocol.v2_codec import Limits
from service.settings import Settings

log = logging.getLogger(__name__)

# Threads that wait on calls: this many calls at once run on the loop (more wait in the pool, as
# HTTP connections wait in the kernel); a stream (ModelStreamInfer, health Watch) holds one for
# its length. An idle thread costs no CPU.
_THREADS = 256


class GrpcServer(Lifecycle):
    def __init__(self, settings: Settings, dataplane: DataPlane, limits: Limits):
        self.settings = settings
        self.dataplane = dataplane
        options = [
            # The HTTP body limit, for a message; beyond it grpc answers RESOURCE_EXHAUSTED.
            ("grpc.max_receive_message_length", settings.max_request_bytes),
            ("grpc.max_send_message_length", -1),
            ("grpc.so_reuseport", 1 if settings.workers > 1 else 0),
        ]
        servicer = InferenceServicer(
            dataplane, KeyRules.from_settings(settings), limits, settings.request_timeout_s, settings.access_log
        )
        self.server = grpc.server(futures.ThreadPoolExecutor(_THREADS, "grpc"), options=options)
        self.server.add_generic_rpc_handlers((_handlers(servicer, asyncio.get_running_loop()),))
        self.health = health.HealthServicer()  # thread-safe: set from the loop, read by grpc's threads
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        reflection.enable_server_reflection((SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME), self.server)
        self.address = f"{_host(settings.host)}:{settings.grpc_port}"

    async def start(self) -> None:
        if self.server.add_insecure_port(self.address) == 0:
            raise RuntimeError(f"gRPC could not listen on {self.address}")
        await self._follow_readiness()
        self.server.start()
        log.info("gRPC listening on %s", self.address)

    async def _stop(self, grace_s: float) -> None:
        self.health.enter_graceful_shutdown()
        # stop() refuses new calls at once; the calls in flight need the loop running to end.
        await asyncio.to_thread(self.server.stop(grace_s).wait)

    async def _serving(self, ready: bool) -> None:
        for name, status in serving_statuses(ready):
            self.health.set(name, status)


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _handlers(servicer: InferenceServicer, loop: asyncio.AbstractEventLoop) -> grpc.GenericRpcHandler:
    """The service's method handlers, built from its descriptor, each running its coroutine on
    `loop`, with a deserializer that turns bytes which are not the message into `Malformed`, so
    they get INVALID_ARGUMENT and a message rather than grpc's bare INTERNAL."""
    handlers = {}
    for method in SERVICE.methods:
        implementation = getattr(servicer, method.name, None)
        if implementation is None:
            continue  # not served: grpc answers UNIMPLEMENTED
        request_class = getattr(pb, method.input_type.name)
        if method.client_streaming:
            make, implementation = grpc.stream_stream_rpc_method_handler, bridge.stream(loop, implementation)
        else:
            make, implementation = grpc.unary_unary_rpc_method_handler, bridge.unary(loop, implementation)
        handlers[method.name] = make(
            implementation,
            request_deserializer=request_parser(method.name, request_class),
            response_serializer=_serialize,
        )
    return grpc.method_handlers_generic_handler(SERVICE_NAME, handlers)


def _serialize(message) -> bytes:
    return message if type(message) is bytes else message.SerializeToString()  # ModelInfer's are bytes


def request_parser(method: str, message_class):
    """ModelInfer's request stays bytes (the servicer reads it: service/grpc/infer_wire.py);
    every other RPC's is parsed leniently."""
    return InferBytes if method == "ModelInfer" else lenient_parser(message_class)


def lenient_parser(message_class):
    def parse(data: bytes):
        try:
            return message_class.FromString(data)
        except Exception as exc:  # noqa: BLE001  (protobuf's DecodeError, or RuntimeWarning-ish faults)
            return Malformed(str(exc) or type(exc).__name__)

    return parse
