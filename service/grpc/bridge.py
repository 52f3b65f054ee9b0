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
import threading

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


# How often a waiting handler thread checks that the loop still runs: the server drains before
# the loop ends, so only a call that outlived the drain finds it closed.
_WATCH_S = 1.0
_GONE = "the server is shutting down"


class _Call:
    """One unary call's coroutine on the loop, and the lock its handler thread waits on."""

    __slots__ = ("done", "error", "result", "task")

    def __init__(self):
        self.task, self.result, self.error = None, None, None
        self.done = _thread.allocate_lock()  # held until the coroutine ends (cheaper than an Event)
        self.done.acquire()

    def start(self, loop: asyncio.AbstractEventLoop, coroutine) -> None:  # on the loop
        self.task = loop.create_task(coroutine)
        self.task.add_done_callback(self._finish)

    def _finish(self, task: asyncio.Task) -> None:  # on the loop
        if task.cancelled():
            self.error = asyncio.CancelledError()
        elif (error := task.exception()) is not None:
            self.error = error
        else:
            self.result = task.result()
        self.done.release()


def unary(loop: asyncio.AbstractEventLoop, method):
    """A synchronous handler for `async def method(request, context) -> reply`."""

    def handle(request, context):
        call, coroutine = _Call(), method(request, LoopContext(context))
        if not _on_loop(loop, call.start, loop, coroutine):
            coroutine.close()
            context.abort(grpc.StatusCode.UNAVAILABLE, _GONE)
        # Called when the RPC ends, however: the client left or its deadline passed, stop the
        # work (started before this callback can run: the loop runs callbacks in order).
        context.add_callback(lambda: call.done.locked() and _on_loop(loop, _cancel, call))
        while not call.done.acquire(timeout=_WATCH_S):
            if loop.is_closed():
                context.abort(grpc.StatusCode.UNAVAILABLE, _GONE)
        if call.error is not None:
            _raise(call.error, context)
        return call.result

    return handle


def stream(loop: asyncio.AbstractEventLoop, method):
    """A synchronous handler for `async def method(requests, context)` yielding replies: requests
    read by a thread of the stream's own, replies handed back through a queue."""

    def handle(request_iterator, context):
        replies: queue.SimpleQueue = queue.SimpleQueue()
        arrived: asyncio.Queue = asyncio.Queue()

        def read() -> None:
            # Its own thread, not the loop's executor: a client may hold its request stream open
            # for as long as it likes, and a few such streams would fill that executor.
            try:
                for request in request_iterator:
                    if not _on_loop(loop, arrived.put_nowait, request):
                        return
            except grpc.RpcError:
                pass  # the RPC ended (the client left): its callback cancels the work
            finally:
                _on_loop(loop, arrived.put_nowait, _END)

        async def requests():
            while (request := await arrived.get()) is not _END:
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

        started: list[asyncio.Task] = []
        if not _on_loop(loop, lambda: started.append(loop.create_task(pump()))):
            context.abort(grpc.StatusCode.UNAVAILABLE, _GONE)
        threading.Thread(target=read, name="grpc-stream-requests", daemon=True).start()
        context.add_callback(lambda: _on_loop(loop, lambda: started[0].cancel()))
        while True:
            try:
                reply = replies.get(timeout=_WATCH_S)
            except queue.Empty:
                if loop.is_closed():
                    context.abort(grpc.StatusCode.UNAVAILABLE, _GONE)
                continue
            if reply is _END:
                return
            if isinstance(reply, _Failed):
                _raise(reply.error, context)
            yield reply

    return handle


def _on_loop(loop: asyncio.AbstractEventLoop, callback, *args) -> bool:
    """Run `callback(*args)` on the loop from another thread; False once the loop has closed."""
    try:
        loop.call_soon_threadsafe(callback, *args)
    except RuntimeError:
        return False
    return True


def _cancel(call: _Call) -> None:  # on the loop, after the call's start
    call.task.cancel()


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
