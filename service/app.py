"""create_app(settings): the FastAPI application, its lifespan and its one error handler."""

import asyncio
import gc
import inspect
import logging
import os
import signal
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from service import __version__, access_log, middleware
from service.dataplane import DataPlane
from service.errors import InvalidInput, ServiceError
from service.protocol import api_docs, cards, generate, metrics_route, openapi, v1, v2, web
from service.protocol import repository as repository_routes
from service.protocol.errors import render
from service.protocol.fast_infer import FastInfer, InferSettings
from service.protocol.generate_front import FastGenerateStream
from service.protocol.responses import JSONResponse
from service.protocol.v2_codec import Limits
from service.repository import Registry
from service.settings import Settings

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        executor = ThreadPoolExecutor(settings.inference_threads, thread_name_prefix="inference")
        registry = Registry(settings, executor)
        app.state.dataplane = app.state.infer.dataplane = DataPlane(registry, "http")
        if settings.workers > 1:
            # uvicorn accepts on a worker's socket once this startup returns: a worker that
            # replaces a dead one must not take requests (404 for every model not loaded yet)
            # that the other workers can serve. Its gRPC port (SO_REUSEPORT) opens after too.
            await asyncio.to_thread(registry.load_all)
        grpc_server = None
        if settings.grpc_port:
            # Imported here: a server with gRPC off never loads grpc.
            if settings.grpc_transport == "asyncio":
                from service.grpc.asyncio_server import AsyncioGrpcServer as GrpcServer
            else:
                from service.grpc.server import GrpcServer

            grpc_server = GrpcServer(settings, app.state.dataplane.for_protocol("grpc"), app.state.limits)
            await grpc_server.start()
            _drain_on_signal(lambda: grpc_server.begin_stop(settings.shutdown_timeout_s))
        # Else load in the background: liveness answers at once, readiness once every model
        # has loaded or failed.
        loading = asyncio.create_task(_load_then_poll(registry, settings))
        loading.add_done_callback(_log_load_crash)
        try:
            yield
        finally:
            if grpc_server is not None:  # draining since the signal, beside HTTP
                await grpc_server.stop(settings.shutdown_timeout_s)
            loading.cancel()
            await asyncio.gather(loading, return_exceptions=True)
            executor.shutdown(wait=True, cancel_futures=True)
            app.state.infer.dataplane = None
            access_log.flush()  # the last requests' lines, before the process ends

    app = FastAPI(
        title="modelserve",
        version=__version__,
        description="Serves ONNX models over the Open Inference Protocol (KServe V2).",
        lifespan=lifespan,
        default_response_class=JSONResponse,
        docs_url=None,  # api_docs serves /docs and /redoc with local assets, not a CDN's
        redoc_url=None,
        **_without_otel(),
    )
    app.state.settings = settings
    app.state.limits = Limits(settings.max_tensor_elements, settings.max_json_depth)
    app.state.infer = InferSettings(app.state, settings)  # for service.http_infer's fast path
    _install_error_handlers(app)
    app.add_middleware(FastGenerateStream)  # first added is innermost: behind auth, limits and logs
    app.add_middleware(FastInfer)
    middleware.install(app, settings)
    app.include_router(repository_routes.router)  # before v2: /v2/models/stats is not a model
    app.include_router(v2.router)
    app.include_router(v1.router)
    app.include_router(generate.router)
    app.include_router(metrics_route.router)
    app.include_router(cards.router)
    app.include_router(web.router)  # the playground at /
    app.include_router(api_docs.router)  # /docs and /redoc
    openapi.install(app)  # the document as the service answers, middlewares included
    return app


def _without_otel() -> dict:
    """FastAPI >= 0.165's OpenTelemetry off, unless asked for with FASTAPI_OTEL_AUTO_CONFIGURE:
    with no provider set up it records nothing, yet looks the providers up (environment reads)
    on every request. The service's metrics are Prometheus'."""
    if "telemetry" not in inspect.signature(FastAPI.__init__).parameters:
        return {}
    if os.environ.get("FASTAPI_OTEL_AUTO_CONFIGURE", "").lower() == "true":
        return {}
    return {"telemetry": {"tracing": False, "metrics": False, "logs": False}}


def _drain_on_signal(begin: Callable[[], None]) -> None:
    """Have SIGTERM and SIGINT start `begin` as well as uvicorn's own shutdown, which reaches the
    lifespan's end only once HTTP has drained: so both transports drain at once, within one
    --shutdown-timeout-s. uvicorn installed its handlers before the lifespan started and puts
    back the ones it found when it exits."""
    if threading.current_thread() is not threading.main_thread():
        return  # signals reach only the main thread (an app mounted by some other server)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        previous = signal.getsignal(sig)
        if not callable(previous):
            continue

        def handler(signum, frame, previous=previous):
            loop.call_soon_threadsafe(begin)
            previous(signum, frame)

        signal.signal(sig, handler)


def create_app_from_env() -> FastAPI:
    """Factory for uvicorn's worker processes, which read their settings from MODELSERVE_*."""
    return create_app(Settings())


async def _load_then_poll(registry: Registry, settings: Settings) -> None:
    if not registry.ready:
        await asyncio.to_thread(registry.load_all)
    _tune_garbage_collector()
    if settings.model_control_mode == "poll":
        await registry.poll_forever(settings.repository_poll_secs)


def _tune_garbage_collector() -> None:
    """Measured (docs/BENCHMARKS.md): Python's default GC thresholds made every few hundred
    requests pay a collection over everything the start-up allocated, which was most of the
    p99 latency (65 ms against a p50 of 9). Frozen start-up objects are never scanned again, and
    young collections come every 20,000 allocations instead of 700."""
    gc.freeze()
    gc.set_threshold(20_000, 50, 100)


def _log_load_crash(task: asyncio.Task) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("loading the repository crashed", exc_info=task.exception())


def _install_error_handlers(app: FastAPI) -> None:
    """Every error the routes raise, rendered by service.protocol.errors."""

    @app.exception_handler(ServiceError)
    async def service_error(request: Request, exc: ServiceError):
        return _rendered(exc, request)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        return _rendered(InvalidInput(f"invalid request: {problems}"), request)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        # The router's own answers: no such route (404), wrong method (405).
        error = ServiceError(str(exc.detail), headers=exc.headers)
        error.status_code = exc.status_code
        return _rendered(error, request)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception):
        return _rendered(exc, request)


def _rendered(exc: BaseException, request: Request) -> Response:
    status, body, headers = render(exc, f"{request.method} {request.url.path}")
    response = Response(body, status_code=status)
    response.raw_headers = headers  # content-type and length included
    return response
