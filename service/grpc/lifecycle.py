"""What both gRPC servers (grpcio's and the asyncio transport) share: the health service
follows readiness, and a drain begins at the shutdown signal."""

import asyncio

from grpc_health.v1 import health_pb2

from service.dataplane import DataPlane
from service.grpc.protocol import SERVICE_NAME

_READY_POLL_S = 0.2


class Lifecycle:
    """A server's start and stop around its `_serving(ready)` and `_stop(grace_s)`."""

    dataplane: DataPlane
    _watch: asyncio.Task | None = None
    _stopping: asyncio.Task | None = None

    async def _serving(self, ready: bool) -> None:
        raise NotImplementedError

    async def _stop(self, grace_s: float) -> None:
        raise NotImplementedError

    async def _follow_readiness(self) -> None:
        """NOT_SERVING now; SERVING once every model has loaded or failed, as /v2/health/ready."""
        await self._serving(False)
        self._watch = asyncio.create_task(self._serve_once_ready())

    async def _serve_once_ready(self) -> None:
        while not self.dataplane.ready():
            await asyncio.sleep(_READY_POLL_S)
        await self._serving(True)

    def begin_stop(self, grace_s: float) -> None:
        """Refuse new calls from now on and give those in flight `grace_s`: called when the
        shutdown signal arrives, so gRPC drains while HTTP does."""
        if self._stopping is None:
            if self._watch is not None:
                self._watch.cancel()
            self._stopping = asyncio.ensure_future(self._stop(grace_s))

    async def stop(self, grace_s: float) -> None:
        """Drain (from the signal on, if it began then) and wait until done."""
        self.begin_stop(grace_s)
        await self._stopping


def serving_statuses(ready: bool) -> list[tuple[str, int]]:
    """What the health service says: the server ("") and the inference service, alike."""
    status = health_pb2.HealthCheckResponse.SERVING if ready else health_pb2.HealthCheckResponse.NOT_SERVING
    return [(name, status) for name in ("", SERVICE_NAME)]
