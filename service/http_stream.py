"""generate_stream answered from the HTTP protocol itself, as service.http_infer answers V2 infer.

At 16 concurrent translations, the ASGI path's work per stream (a scope and uvicorn's request
cycle, six middlewares, a Request to read the body, a task that waits for the disconnect, and
every token's chunk through three `send` wrappers and uvicorn's own) cost more of the server's
CPU than the decoder steps the stream shared (docs/BENCHMARKS.md). Here the request runs the
documented route's steps (the model, the body as a JSON object, the plan, then the events)
and writes each event as an HTTP/1.1 chunk to the transport. A translation's stream is pushed:
the decoder step that chooses a token writes its chunk (TokenStream.push), where an iterated
stream woke the request's task and resumed three async generators per token (a fifth of the CPU
of a translation at 16 concurrent, docs/BENCHMARKS.md). Other streams are iterated
(generate_events.server_sent). A client that leaves is seen by the protocol (connection_lost),
which cancels the request's task where it waits: the sequence leaves its batch before the next
step, as on the ASGI path.

service.http_infer sends here only what the middlewares would let through unchanged; everything
else (a form upload, HTTP/1.0, a refused key...) still takes the ASGI route.
"""

import asyncio
from collections.abc import Awaitable

from service.http_cycle import FastCycle
from service.protocol.body import json_object
from service.protocol.generate_events import HEADERS, ServerSent, server_sent

_LINES = b"".join(b"%s: %s\r\n" % header for header in HEADERS) + b"transfer-encoding: chunked\r\n"
_END = b"0\r\n\r\n"  # the last chunk: the response ends


def _chunk(data: bytes, last: bool) -> bytes:
    """One event as an HTTP/1.1 chunk; the last one ends the response in the same write."""
    return b"%x\r\n%s\r\n%s" % (len(data), data, _END if last else b"")


class StreamCycle(FastCycle):
    """One generate_stream request on the fast path."""

    __slots__ = ("left",)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.left = False  # the client went away mid-stream: the stream's task was cancelled

    def set(self) -> None:
        # uvicorn's connection_lost marks the cycle disconnected and sets its event: mid-stream,
        # that stops the stream where it awaits its next event.
        if self.disconnected and not self.reading_body and not self.response_complete and not self.left:
            self.left = True
            self.task.cancel()
            return
        super().set()

    async def answer(self, body: bytes | memoryview) -> tuple:
        model = self.dataplane.model(self.name, self.version)
        plan, events = self.dataplane.generate_stream(model, json_object(body, self.protocol.infer.limits.max_json_depth))
        return model, plan.format, events

    def send(self, answer: tuple) -> Awaitable[None]:
        return self._stream(*answer)

    async def _stream(self, model, fmt: str, events) -> None:
        """The events as server-sent events, a chunk each, until they end or the client leaves."""
        protocol = self.protocol
        if self.disconnected:
            return
        head = self.head(200, _LINES) + b"\r\n"
        try:
            if events.pushable:
                await self._pushed(ServerSent(model, fmt), events, head)
            else:
                protocol.transport.write(head)
                await self._iterated(model, fmt, events)
        except asyncio.CancelledError:
            if not self.left:  # someone else's cancellation (shutdown)
                raise
            self.task.uncancel()  # ours: the client has gone, nobody is left to answer
            return
        if not self.disconnected:
            self.complete()

    async def _pushed(self, writer: ServerSent, events, head: bytes) -> None:
        """Each event written as the stepper's step makes it (TokenStream.push): no task wakes
        per token. Written without waiting for a slow reader: a pushed stream is a translation,
        at most max_output_tokens small events, which the transport buffers. The response's
        head goes out with the first event, a step later: one write (a system call, and a
        wake-up of the client) less per stream."""
        transport = self.protocol.transport
        ended = self.protocol.loop.create_future()

        def deliver(event, error: BaseException | None) -> None:
            nonlocal head
            if error is None:
                try:
                    chunk, last = writer.event(event), event.final
                except Exception as exc:  # noqa: BLE001  (ours: logged, and the stream's last event)
                    chunk, last = writer.error(exc), True
            else:
                chunk, last = writer.error(error), True
            if not self.disconnected:
                if head:
                    transport.write(head + _chunk(chunk, last))
                    head = b""
                else:
                    transport.write(_chunk(chunk, last))
            if last and not ended.done():
                ended.set_result(None)

        stream = events.push(deliver)
        try:
            await ended
        finally:
            stream.leave()  # a no-op once it has ended

    async def _iterated(self, model, fmt: str, events) -> None:
        protocol = self.protocol
        write, flow = protocol.transport.write, protocol.flow
        ended = False
        # To the events' end, never out of the loop early: a stream left unfinished is counted
        # as a cancelled request (dataplane._Counted). A client that leaves cancels the task.
        async for chunk, last in server_sent(model, fmt, events):
            if flow.write_paused:  # the client reads slower than tokens come: they wait
                await flow.drain()
            # the last event ends the response in the same write
            write(_chunk(chunk, last))
            ended = ended or last
        if not ended:
            write(_END)
