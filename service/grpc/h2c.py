"""A small HTTP/2 server connection (RFC 9113), cleartext with prior knowledge as gRPC clients
speak it, run as an asyncio.Protocol on the event loop that serves HTTP.

Why our own framing: hyper-h2's state machine costs ~330 µs of CPU a unary call on this
machine, grpcio's synchronous server ~180 µs, uvicorn's whole HTTP/1.1 request ~60 µs
(bench/grpc_echo.py). A gRPC server needs little of HTTP/2: streams the client opens, its
SETTINGS, PING, WINDOW_UPDATE, RST_STREAM and GOAWAY, flow control on what we send. HPACK
decoding is the `hpack` package's (h2's own), with each header block's decoding remembered while
the client's dynamic table stays the same (a client repeats the same block for every call); our
header blocks never use the dynamic table (literal without indexing), so our encoder has no
state to keep.

The gRPC layer above (service/grpc/asyncio_server.py) sees `Stream`s: `on_headers` when a
request's headers are complete, `on_data` for each DATA payload, `on_end` when the client
half-closes, `on_reset` when the stream or connection dies; it answers with `send_headers`,
`send_data`, `send_trailers`.
"""

import asyncio
import logging
import socket
import struct

from hpack import Decoder, HPACKError

log = logging.getLogger(__name__)

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = range(10)
END_STREAM = ACK = 0x1
END_HEADERS, PADDED, PRIORITY_FLAG = 0x4, 0x8, 0x20
# Error codes (RFC 9113 §7)
NO_ERROR, PROTOCOL_ERROR, INTERNAL_ERROR, FLOW_CONTROL_ERROR = 0x0, 0x1, 0x2, 0x3
STREAM_CLOSED, FRAME_SIZE_ERROR, REFUSED_STREAM, CANCEL, COMPRESSION_ERROR = 0x5, 0x6, 0x7, 0x8, 0x9
# SETTINGS identifiers
S_HEADER_TABLE_SIZE, S_ENABLE_PUSH, S_MAX_CONCURRENT_STREAMS, S_INITIAL_WINDOW_SIZE = 0x1, 0x2, 0x3, 0x4
S_MAX_FRAME_SIZE, S_MAX_HEADER_LIST_SIZE = 0x5, 0x6

_HEADER = struct.Struct(">IBI")  # (24-bit length << 8 | type), flags, stream id: the 9-byte frame header
_MAX_WINDOW = 2**31 - 1
# The largest frame we accept, announced: a request of up to 1 MiB comes in one DATA frame
# (a 64-row request of the benchmark is 16.4 KB, just over the protocol's default of 16 KiB).
_FRAME_SIZE = 2**20
_DEFAULT_WINDOW = 65535
# Our receive windows: large, so a big request is never held back by a round trip per 64 KiB;
# the message size limit bounds what a stream may buffer.
_WINDOW = 16 * 1024 * 1024
_MAX_HEADER_LIST = 64 * 1024
_CACHE_BLOCKS = 64  # remembered header blocks per connection


def frame(kind: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    """One frame's bytes: 9-byte header (24-bit length, type, flags, 31-bit stream) + payload."""
    return _HEADER.pack(len(payload) << 8 | kind, flags, stream_id) + payload


def _frame_head(kind: int, flags: int, stream_id: int, length: int) -> bytes:
    return _HEADER.pack(length << 8 | kind, flags, stream_id)


def literal(name: bytes, value: bytes) -> bytes:
    """One header as HPACK 'literal without indexing, new name', no Huffman (RFC 7541 §6.2.2):
    it leaves both sides' dynamic tables as they were."""
    return b"\x00" + hpack_length(name) + name + hpack_length(value) + value


def hpack_length(data: bytes) -> bytes:
    """An HPACK string length, 7-bit prefix, Huffman bit off (RFC 7541 §5.1)."""
    n = len(data)
    if n < 127:
        return bytes((n,))
    out, n = bytearray((127,)), n - 127
    while n >= 128:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


class ConnectionError_(Exception):
    """A connection error (RFC 9113 §5.4.1): GOAWAY with `code`, then close."""

    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code


class Stream:
    """One request stream; the gRPC layer sets `handler` (an object with on_data, on_end,
    on_reset) in its `on_headers`."""

    __slots__ = (
        "closed",
        "connection",
        "drained",
        "handler",
        "headers",
        "id",
        "metadata",
        "pending",
        "received",
        "send_window",
        "trailers",
    )

    def __init__(self, stream_id: int, connection: "H2Connection", window: int):
        self.id, self.connection = stream_id, connection
        self.headers: list[tuple[str, str]] = []
        self.metadata: tuple = ()  # the gRPC layer's reading of the headers
        self.handler = None
        self.send_window = window
        self.pending = bytearray()  # DATA not yet sent for want of flow-control window
        self.trailers: bytes | None = None  # sent once `pending` is
        self.received = 0  # DATA bytes received since our last WINDOW_UPDATE for the stream
        self.closed = False  # our side ended (trailers sent, or reset)
        self.drained: asyncio.Event | None = None  # made when a writer waits for window

    # ---------------------------------------------------------------- answering (the gRPC layer)
    def send_headers(self, block: bytes, end_stream: bool = False) -> None:
        if not self.closed:
            self.connection._send_headers(self, block, end_stream)

    def send_data(self, data: bytes) -> None:
        if not self.closed:
            self.pending += data
            self.connection._flush(self)

    def send_response(self, headers: bytes, prefix: bytes, message: bytes, trailers: bytes) -> None:
        """A whole answer, headers, data (`prefix` + `message`) and trailers, in one write."""
        if self.closed:
            return
        connection = self.connection
        size = len(prefix) + len(message)
        if (not self.pending and size <= connection.send_window and size <= self.send_window
                and size <= connection.max_frame and not connection.closing):
            # The common case, in one frame within every window: no buffer, the message copied once.
            connection.send_window -= size
            self.send_window -= size
            connection.transport.write(b"".join((
                connection._header_frames(self.id, headers, False),
                _frame_head(DATA, 0, self.id, size), prefix, message,
                connection._header_frames(self.id, trailers, True),
            )))
            connection._close(self)
            return
        self.pending += prefix
        self.pending += message
        self.trailers = trailers
        connection._flush(self, connection._header_frames(self.id, headers, False))

    def send_trailers(self, block: bytes) -> None:
        """The last header block, END_STREAM: sent after the pending data."""
        if not self.closed:
            self.trailers = block
            self.connection._flush(self)

    def reset(self, code: int = CANCEL) -> None:
        if not self.closed:
            self.connection._reset(self, code)

    async def wait_drained(self) -> None:
        """Until all data given is sent (flow control let it): a streaming writer's backpressure."""
        while self.pending and not self.closed:
            self.drained = self.drained or asyncio.Event()
            self.drained.clear()
            await self.drained.wait()


class H2Connection(asyncio.Protocol):
    """One client connection; `on_headers(stream)` is the gRPC layer's entry for a new stream."""

    def __init__(self, on_headers, on_close=None):
        self.on_headers, self.on_close = on_headers, on_close
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.preface = False
        self.streams: dict[int, Stream] = {}
        self.last_stream = 0  # highest stream id the client opened
        self.send_window = _DEFAULT_WINDOW  # the connection's, for our DATA
        self.initial_window = _DEFAULT_WINDOW  # the client's SETTINGS_INITIAL_WINDOW_SIZE
        self.max_frame = 16384  # the client's SETTINGS_MAX_FRAME_SIZE, for what we send
        self.received = 0  # DATA bytes since our last connection WINDOW_UPDATE
        self.decoder = Decoder()
        self.decoder.max_header_list_size = _MAX_HEADER_LIST
        self.blocks: dict[bytes, list] = {}  # header block -> decoded headers, for this table
        self.continuing: tuple[int, int, bytearray] | None = None  # (stream, flags, block) awaiting CONTINUATION
        self.going_away = False
        self.closing = False  # we closed the transport, or the client did
        self.blocked: set[Stream] = set()  # streams with data or trailers waiting for window

    # ---------------------------------------------------------------- asyncio.Protocol
    def connection_made(self, transport) -> None:
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            # Small frames (a PING's ACK, then an answer) must not wait for the client's delayed ACK.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        settings = struct.pack(">HIHIHIHI", S_ENABLE_PUSH, 0, S_INITIAL_WINDOW_SIZE, _WINDOW,
                               S_MAX_FRAME_SIZE, _FRAME_SIZE, S_MAX_HEADER_LIST_SIZE, _MAX_HEADER_LIST)
        transport.write(frame(SETTINGS, 0, 0, settings)
                        + frame(WINDOW_UPDATE, 0, 0, (_WINDOW - _DEFAULT_WINDOW).to_bytes(4, "big")))

    def connection_lost(self, exc) -> None:
        self.closing = True
        streams, self.streams = list(self.streams.values()), {}
        for stream in streams:
            stream.closed = True
            if stream.drained is not None:
                stream.drained.set()
            if stream.handler is not None:
                stream.handler.on_reset()
        if self.on_close is not None:
            self.on_close(self)

    def data_received(self, data: bytes) -> None:
        if self.buffer:  # the rest of a frame that came in an earlier read
            self.buffer += data
            data = bytes(self.buffer)
            self.buffer.clear()
        try:
            start = 0
            if not self.preface:
                if len(data) < len(PREFACE):
                    if not PREFACE.startswith(data):
                        raise ConnectionError_(PROTOCOL_ERROR, "not an HTTP/2 client preface")
                    self.buffer += data
                    return
                if not data.startswith(PREFACE):
                    raise ConnectionError_(PROTOCOL_ERROR, "not an HTTP/2 client preface")
                start, self.preface = len(PREFACE), True
            end = len(data)
            view = memoryview(data)
            while end - start >= 9:
                length_kind, flags, stream_id = _HEADER.unpack_from(data, start)
                length, kind = length_kind >> 8, length_kind & 0xFF
                if length > _FRAME_SIZE:
                    raise ConnectionError_(FRAME_SIZE_ERROR, f"frame of {length} bytes")
                if end - start < 9 + length:
                    break
                # DATA without a copy (a view; the gRPC layer copies a message once, if it must
                # gather it); other frames' payloads as bytes.
                payload = (view if kind == DATA else data)[start + 9: start + 9 + length]
                start += 9 + length
                self._frame(kind, flags, stream_id & _MAX_WINDOW, payload)
                if self.closing:
                    return
            if start < end:
                self.buffer += data[start:]
        except ConnectionError_ as exc:
            self._goaway(exc.code, str(exc))
            self.close()
        except Exception:  # a fault of ours: this connection ends, the server goes on
            log.exception("HTTP/2 connection failed")
            self._goaway(INTERNAL_ERROR, "internal error")
            self.close()

    def close(self) -> None:
        if not self.closing:
            self.closing = True
            self.transport.close()

    # ---------------------------------------------------------------- frames received
    def _frame(self, kind: int, flags: int, stream_id: int, payload: bytes) -> None:
        if self.continuing is not None and kind != CONTINUATION:
            raise ConnectionError_(PROTOCOL_ERROR, "expected CONTINUATION")
        if kind == DATA:
            self._data(flags, stream_id, payload)
        elif kind == WINDOW_UPDATE:  # second: a gRPC client sends two for every answer it reads
            self._window_update(stream_id, payload)
        elif kind == HEADERS:
            if stream_id == 0:
                raise ConnectionError_(PROTOCOL_ERROR, "HEADERS on stream 0")
            block = _unpad(flags, payload)
            if flags & PRIORITY_FLAG:
                block = block[5:]  # stream dependency and weight: we do not prioritise
            if flags & END_HEADERS:
                self._headers(stream_id, flags, block)
            else:
                self.continuing = (stream_id, flags, bytearray(block))
        elif kind == CONTINUATION:
            if self.continuing is None or self.continuing[0] != stream_id:
                raise ConnectionError_(PROTOCOL_ERROR, "unexpected CONTINUATION")
            self.continuing[2].extend(payload)
            if len(self.continuing[2]) > _MAX_HEADER_LIST:
                raise ConnectionError_(PROTOCOL_ERROR, "header block too large")
            if flags & END_HEADERS:
                stream_id, first_flags, block = self.continuing
                self.continuing = None
                self._headers(stream_id, first_flags, bytes(block))
        elif kind == SETTINGS:
            if stream_id != 0 or len(payload) % 6:
                raise ConnectionError_(FRAME_SIZE_ERROR if len(payload) % 6 else PROTOCOL_ERROR, "bad SETTINGS")
            if not flags & ACK:
                self._settings(payload)
                self.transport.write(frame(SETTINGS, ACK, 0))
        elif kind == PING:
            if len(payload) != 8:
                raise ConnectionError_(FRAME_SIZE_ERROR, "PING of the wrong size")
            if not flags & ACK:
                self.transport.write(frame(PING, ACK, 0, payload))
        elif kind == RST_STREAM:
            stream = self.streams.pop(stream_id, None)
            if stream is not None:
                self.blocked.discard(stream)
                stream.closed = True
                if stream.drained is not None:
                    stream.drained.set()
                if stream.handler is not None:
                    stream.handler.on_reset()
        elif kind == GOAWAY:
            self.going_away = True  # the client opens no more streams; those open finish
        elif kind == PUSH_PROMISE:
            raise ConnectionError_(PROTOCOL_ERROR, "PUSH_PROMISE from a client")
        # PRIORITY and unknown frame types are ignored (RFC 9113 §5.5).

    def _data(self, flags: int, stream_id: int, payload: bytes) -> None:
        if stream_id == 0:
            raise ConnectionError_(PROTOCOL_ERROR, "DATA on stream 0")
        # Flow control counts the whole payload, padding included (RFC 9113 §6.9.1).
        self.received += len(payload)
        if self.received >= _WINDOW // 2:
            self.transport.write(frame(WINDOW_UPDATE, 0, 0, self.received.to_bytes(4, "big")))
            self.received = 0
        stream = self.streams.get(stream_id)
        if stream is None or stream.handler is None:
            if stream_id > self.last_stream:
                raise ConnectionError_(PROTOCOL_ERROR, "DATA on an idle stream")
            return  # a stream we reset or finished: its data is dropped
        stream.received += len(payload)
        if stream.received >= _WINDOW // 2 and not flags & END_STREAM:
            self.transport.write(frame(WINDOW_UPDATE, 0, stream_id, stream.received.to_bytes(4, "big")))
            stream.received = 0
        data = _unpad(flags, payload)
        if data:
            stream.handler.on_data(data)
        if flags & END_STREAM and stream.handler is not None:
            stream.handler.on_end()

    def _headers(self, stream_id: int, flags: int, block: bytes) -> None:
        headers = self._decode(block)  # always, even for a stream we drop: the table must follow
        stream = self.streams.get(stream_id)
        if stream is not None:  # trailers from the client: they end its side
            if flags & END_STREAM and stream.handler is not None:
                stream.handler.on_end()
            return
        if not stream_id & 1:
            raise ConnectionError_(PROTOCOL_ERROR, f"HEADERS opening stream {stream_id}")
        if stream_id <= self.last_stream:
            return  # a stream that ended (we answered, or reset it): ignored (RFC 9113 §5.1)
        self.last_stream = stream_id
        if self.going_away:
            self.transport.write(frame(RST_STREAM, 0, stream_id, REFUSED_STREAM.to_bytes(4, "big")))
            return
        stream = self.streams[stream_id] = Stream(stream_id, self, self.initial_window)
        stream.headers = headers
        self.on_headers(stream)
        if flags & END_STREAM and stream.handler is not None:
            stream.handler.on_end()

    def _decode(self, block: bytes) -> list:
        """The block's headers: remembered for blocks that left the dynamic table as it was, as
        long as it stays so (any block that changes it empties the memory)."""
        headers = self.blocks.get(block)
        if headers is not None:
            return headers
        table = self.decoder.header_table
        before = (len(table.dynamic_entries), table.dynamic_entries[0] if table.dynamic_entries else None,
                  table.maxsize)
        try:
            headers = self.decoder.decode(block)
        except HPACKError as exc:
            raise ConnectionError_(COMPRESSION_ERROR, f"bad header block: {exc}") from None
        after = (len(table.dynamic_entries), table.dynamic_entries[0] if table.dynamic_entries else None,
                 table.maxsize)
        if after[0] != before[0] or after[1] is not before[1] or after[2] != before[2]:
            self.blocks.clear()  # the table changed: what was remembered may now decode otherwise
        else:
            if len(self.blocks) >= _CACHE_BLOCKS:
                self.blocks.clear()
            self.blocks[block] = headers
        return headers

    def _settings(self, payload: bytes) -> None:
        for offset in range(0, len(payload), 6):
            key, value = struct.unpack_from(">HI", payload, offset)
            if key == S_INITIAL_WINDOW_SIZE:
                if value > _MAX_WINDOW:
                    raise ConnectionError_(FLOW_CONTROL_ERROR, "initial window too large")
                delta, self.initial_window = value - self.initial_window, value
                for stream in self.streams.values():
                    stream.send_window += delta
            elif key == S_MAX_FRAME_SIZE:
                if not 16384 <= value <= 16777215:
                    raise ConnectionError_(PROTOCOL_ERROR, "bad max frame size")
                self.max_frame = value
            # HEADER_TABLE_SIZE: our blocks never use the dynamic table. Others do not concern a server.
        for stream in list(self.blocked):
            self._flush(stream)

    def _window_update(self, stream_id: int, payload: bytes) -> None:
        if len(payload) != 4:
            raise ConnectionError_(FRAME_SIZE_ERROR, "WINDOW_UPDATE of the wrong size")
        increment = int.from_bytes(payload, "big") & _MAX_WINDOW
        if stream_id == 0:
            if increment == 0:
                raise ConnectionError_(PROTOCOL_ERROR, "WINDOW_UPDATE of 0")
            self.send_window += increment
            if self.send_window > _MAX_WINDOW:
                raise ConnectionError_(FLOW_CONTROL_ERROR, "connection window overflow")
            if self.blocked:
                for stream in list(self.blocked):
                    self._flush(stream)
        elif (stream := self.streams.get(stream_id)) is not None:
            stream.send_window += increment
            if increment == 0 or stream.send_window > _MAX_WINDOW:
                self._reset(stream, PROTOCOL_ERROR if increment == 0 else FLOW_CONTROL_ERROR)
                if stream.handler is not None:
                    stream.handler.on_reset()
            else:
                self._flush(stream)

    # ---------------------------------------------------------------- sending
    def _send_headers(self, stream: Stream, block: bytes, end_stream: bool) -> None:
        self.transport.write(self._header_frames(stream.id, block, end_stream))
        if end_stream:
            self._close(stream)

    def _header_frames(self, stream_id: int, block: bytes, end_stream: bool) -> bytes:
        """HEADERS, and CONTINUATION frames for a block larger than the client's frame size."""
        flags = END_STREAM if end_stream else 0
        if len(block) <= self.max_frame:
            return frame(HEADERS, flags | END_HEADERS, stream_id, block)
        size = self.max_frame
        chunks = [block[i: i + size] for i in range(0, len(block), size)]
        out = [frame(HEADERS, flags, stream_id, chunks[0])]
        out += [frame(CONTINUATION, 0, stream_id, c) for c in chunks[1:-1]]
        out.append(frame(CONTINUATION, END_HEADERS, stream_id, chunks[-1]))
        return b"".join(out)

    def _flush(self, stream: Stream, prefix: bytes = b"") -> None:
        """Send `prefix` (a header block's frames), then what flow control allows of the stream's
        data, then its trailers once all is out."""
        if stream.closed or self.closing:
            return
        out = [prefix]
        pending = stream.pending
        while pending:
            size = min(len(pending), self.send_window, stream.send_window, self.max_frame)
            if size <= 0:
                break
            out.append(frame(DATA, 0, stream.id, bytes(pending[:size])))
            del pending[:size]
            self.send_window -= size
            stream.send_window -= size
        if not pending and stream.trailers is not None:
            out.append(self._header_frames(stream.id, stream.trailers, True))
            stream.trailers = None
            self._close(stream)
        if len(out) > 1 or prefix:
            self.transport.write(b"".join(out))
        if pending:
            self.blocked.add(stream)
        else:
            self.blocked.discard(stream)
            if stream.drained is not None:
                stream.drained.set()

    def _close(self, stream: Stream) -> None:
        """Our side ended. A client that has not half-closed yet gets RST_STREAM(NO_ERROR), so it
        stops sending (RFC 9113 §8.1)."""
        stream.closed = True
        if stream.drained is not None:
            stream.drained.set()
        self.streams.pop(stream.id, None)
        self.blocked.discard(stream)
        if stream.handler is not None and not stream.handler.ended:
            self.transport.write(frame(RST_STREAM, 0, stream.id, NO_ERROR.to_bytes(4, "big")))

    def _reset(self, stream: Stream, code: int) -> None:
        stream.closed = True
        if stream.drained is not None:
            stream.drained.set()
        self.streams.pop(stream.id, None)
        self.blocked.discard(stream)
        if not self.closing:
            self.transport.write(frame(RST_STREAM, 0, stream.id, code.to_bytes(4, "big")))

    def _goaway(self, code: int, message: str = "") -> None:
        if not self.closing:
            payload = self.last_stream.to_bytes(4, "big") + code.to_bytes(4, "big") + message.encode()[:256]
            self.transport.write(frame(GOAWAY, 0, 0, payload))

    def go_away(self) -> None:
        """Graceful shutdown: no new streams; those open finish (the gRPC layer closes after)."""
        if not self.going_away:
            self.going_away = True
            self._goaway(NO_ERROR)


def _unpad(flags: int, payload: bytes) -> bytes:
    """A DATA or HEADERS payload without its padding (RFC 9113 §6.1)."""
    if not flags & PADDED:
        return payload
    if not payload or payload[0] >= len(payload):
        raise ConnectionError_(PROTOCOL_ERROR, "padding longer than the frame")
    return payload[1: len(payload) - payload[0]]
