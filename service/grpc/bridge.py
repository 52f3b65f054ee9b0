"""The servicer's coroutines served from grpcio's synchronous server: each call's handler thread
starts the coroutine on the event loop that owns the DataPlane, and waits for its end.

Why not grpc.aio: it runs grpcio's per-call work on the event loop itself (about 175 µs a call,
its poller thread preempting the loop 7 times: bench/grpc_threads.py), and it hands the loop
about one call per turn, so the batcher ran every call alone. Here a call's thread only waits;
while the loop runs one execution the other calls' starts queue up, and the batcher gathers
them as it gathers HTTP's.
"""

import _thread
import asyncio
import queue

import grpc

_END = object()


class Abort(Exception):
    """Raised by `LoopContext.abort` on the loop; the handler thread turns it into the status."""

    def __init__(self, code: grpc.StatusCode, details: str, trailers: tuple):
        self.code, self.details, self.trailers = code, details, trailers


class LoopContext:
    """What the servicer uses of grpc.aio's context, over a synchronous server's context."""

    __slots__ = ("_context",)

    def __init__(self, context: grpc.ServicerContext):
        self._context = context

    def invocation_metadata(self):
        return self._context.invocation_metadata()

    def set_trailing_metadata(self, metadata) -> None:
        self._context.set_trailing_metadata(metadata)

    async def abort(self, code: grpc.StatusCode, details: str = "", trailing_metadata: tuple = ()):
        raise Abort(code, details, tuple(trailing_metadata))


class _Call:
    """One unary call's coroutine on the loop, and the lock its handler thread waits on."""

    __slots__ = ("done", "error", "loop", "result", "task")

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop, self.task, self.result, self.error = loop, None, None, None
        self.done = _thread.allocate_lock()  # held until the coroutine ends (cheaper than an Event)
        self.done.acquire()

    def start(self, coroutine) -> None:  # on the loop
        if self.error is not None:  # the call ended before it began
            coroutine.close()
            self.done.release()
            return
        self.task = self.loop.create_task(coroutine)
        self.task.add_done_callback(self._finish)

    def _finish(self, task: asyncio.Task) -> None:  # on the loop
        if task.cancelled():
            self.error = asyncio.CancelledError()
        elif (error := task.exception()) is not None:
            self.error = error
        else:
            self.result = task.result()
        self.done.release()

    def cancel(self) -> None:  # grpc's callback when the RPC ends: the client left, or its deadline
        if not self.done.locked():
            return  # finished: nothing to stop
        self.loop.call_soon_threadsafe(self._cancel)

    def _cancel(self) -> None:  # on the loop
        if self.task is None:
            self.error = asyncio.CancelledError()
        else:
            self.task.cancel()


def unary(loop: asyncio.AbstractEventLoop, method):
    """A synchronous handler for `async def method(request, context) -> reply`."""

    def handle(request, context):
        call = _Call(loop)
        loop.call_soon_threadsafe(call.start, method(request, LoopContext(context)))
        context.add_callback(call.cancel)
        call.done.acquire()
        if call.error is not None:
            _raise(call.error, context)
        return call.result

    return handle


def stream(loop: asyncio.AbstractEventLoop, method):
    """A synchronous handler for `async def method(requests, context)` yielding replies: requests
    read in a worker thread, replies handed back through a queue."""

    def handle(request_iterator, context):
        replies: queue.SimpleQueue = queue.SimpleQueue()

        async def requests():
            while (request := await loop.run_in_executor(None, next, request_iterator, _END)) is not _END:
                yield request

        async def pump():
            try:
                async for reply in method(requests(), LoopContext(context)):
                    replies.put(reply)
            except BaseException as exc:  # raised again in the handler thread
                replies.put(_Failed(exc))
                if not isinstance(exc, Exception):
                    raise
            finally:
                replies.put(_END)

        task_box: list[asyncio.Task] = []
        loop.call_soon_threadsafe(lambda: task_box.append(loop.create_task(pump())))
        context.add_callback(lambda: loop.call_soon_threadsafe(lambda: task_box and task_box[0].cancel()))
        while (reply := replies.get()) is not _END:
            if isinstance(reply, _Failed):
                _raise(reply.error, context)
            yield reply

    return handle


class _Failed:
    __slots__ = ("error",)

    def __init__(self, error: BaseException):
        self.error = error


def _raise(error: BaseException, context) -> None:
    if isinstance(error, Abort):
        if error.trailers:
            context.set_trailing_metadata(error.trailers)
        context.abort(error.code, error.details)
    if isinstance(error, asyncio.CancelledError):
        context.abort(grpc.StatusCode.CANCELLED, "cancelled")
    raise error
