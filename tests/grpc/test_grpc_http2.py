"""HTTP/2 as a conforming client may speak it, frame by frame (hyperframe and hpack, h2's own
parts): padding, CONTINUATION, PING, a tiny flow-control window, RST_STREAM.
Run against both gRPC transports (tests/grpc/conftest.py)."""

import socket

import numpy as np
import pytest
from hpack import Decoder, Encoder
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    Frame,
    HeadersFrame,
    PingFrame,
    RstStreamFrame,
    SettingsFrame,
    WindowUpdateFrame,
)
from tritonclient.grpc import service_pb2 as pb

from tests import onnx_models

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
INFER = "/inference.GRPCInferenceService/ModelInfer"


@pytest.fixture(scope="module")
def url(tmp_path_factory, module_server):
    repo = tmp_path_factory.mktemp("repo")
    onnx_models.save(onnx_models.identity("FP32"), repo, "ident")
    return module_server(repo)


class Client:
    """A raw HTTP/2 connection: we write the frames, read them back one by one."""

    def __init__(self, address: str, settings: dict | None = None):
        host, port = address.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=10)
        self.encoder, self.decoder = Encoder(), Decoder()
        self.buffer, self.seen = b"", []
        self.send(SettingsFrame(0, settings=settings or {}), raw=PREFACE)

    def send(self, *frames, raw: bytes = b"") -> None:
        self.sock.sendall(raw + b"".join(f.serialize() for f in frames))

    def read(self) -> Frame:
        while True:
            if len(self.buffer) >= 9:
                frame, length = Frame.parse_frame_header(memoryview(self.buffer[:9]))
                if len(self.buffer) >= 9 + length:
                    frame.parse_body(memoryview(self.buffer[9: 9 + length]))
                    self.buffer = self.buffer[9 + length:]
                    self.seen.append(frame)
                    if isinstance(frame, SettingsFrame) and "ACK" not in frame.flags:
                        self.send(SettingsFrame(0, flags=["ACK"]))
                    return frame
            chunk = self.sock.recv(65536)
            assert chunk, f"the server closed the connection (frames before: {self.seen})"
            self.buffer += chunk

    def headers(self, path: str = INFER) -> bytes:
        return self.encoder.encode([(":method", "POST"), (":scheme", "http"), (":path", path),
                                    (":authority", "test"), ("content-type", "application/grpc"), ("te", "trailers")])

    def answer(self, stream_id: int, refill: bool = False) -> tuple[list, bytes, list, list[DataFrame]]:
        """(headers, message bytes, trailers, DATA frames) of one stream's answer; with `refill`,
        each DATA frame's bytes given back to the stream's window at once."""
        head, trailers, body, frames = None, None, b"", []
        while trailers is None:
            frame = self.read()
            if frame.stream_id != stream_id:
                continue
            if isinstance(frame, HeadersFrame):
                block = frame.data
                while "END_HEADERS" not in frame.flags:
                    frame = self.read()
                    block += frame.data
                decoded = self.decoder.decode(block)
                if head is None:
                    head = decoded
                    if "END_STREAM" in frame.flags:
                        trailers = decoded  # trailers-only
                else:
                    trailers = decoded
            elif isinstance(frame, DataFrame):
                frames.append(frame)
                body += frame.data
                if refill and frame.data:
                    self.send(WindowUpdateFrame(stream_id, window_increment=len(frame.data)),
                              WindowUpdateFrame(0, window_increment=len(frame.data)))
            elif isinstance(frame, RstStreamFrame):
                pytest.fail(f"stream reset: {frame.error_code}")
        return head, body[5:], trailers, frames


def request(values) -> bytes:
    message = pb.ModelInferRequest(model_name="ident")
    message.inputs.add(name="input", datatype="FP32", shape=[len(values), 3])
    message.raw_input_contents.append(np.asarray(values, np.float32).tobytes())
    data = message.SerializeToString()
    return b"\0" + len(data).to_bytes(4, "big") + data


def output(message: bytes) -> np.ndarray:
    response = pb.ModelInferResponse.FromString(message)
    return np.frombuffer(response.raw_output_contents[0], np.float32).reshape(list(response.outputs[0].shape))


def status(trailers) -> str:
    return dict(trailers)["grpc-status"]


@pytest.mark.parametrize("padded", [False, True])
def test_continuation_ping_and_padding(url, grpc_transport, padded):
    if padded and grpc_transport == "grpcio":
        pytest.skip("grpcio answers padded HEADERS with INTERNAL and resets padded DATA (its own parser's limits)")
    client = Client(url.grpc)
    block = client.headers()
    cut = len(block) // 2
    body = request([[1, 2, 3]])
    pad = {"pad_length": 7, "flags": ["PADDED"]} if padded else {}
    client.send(
        HeadersFrame(1, data=block[:cut], **pad),  # no END_HEADERS: the rest follows
        ContinuationFrame(1, data=block[cut:], flags=["END_HEADERS"]),
        PingFrame(0, opaque_data=b"12345678"),
        DataFrame(1, data=body[:10], **pad),
        DataFrame(1, data=body[10:], pad_length=3 if padded else 0,
                  flags=["PADDED", "END_STREAM"] if padded else ["END_STREAM"]),
    )
    pinged = False
    while not pinged:
        frame = client.read()
        pinged = isinstance(frame, PingFrame) and "ACK" in frame.flags and frame.opaque_data == b"12345678"
    head, message, trailers, _ = client.answer(1)
    assert dict(head)[":status"] == "200" and status(trailers) == "0"
    assert output(message).tolist() == [[1, 2, 3]]


def test_a_tiny_window_gets_the_answer_in_pieces(url):
    client = Client(url.grpc, settings={SettingsFrame.INITIAL_WINDOW_SIZE: 16})
    values = np.arange(30, dtype=np.float32).reshape(10, 3)
    client.send(HeadersFrame(1, data=client.headers(), flags=["END_HEADERS"]),
                DataFrame(1, data=request(values), flags=["END_STREAM"]))
    _, message, trailers, frames = client.answer(1, refill=True)
    assert status(trailers) == "0"
    assert np.array_equal(output(message), values)
    assert len(frames) > 1 and all(len(f.data) <= 16 for f in frames)


def test_a_reset_stream_leaves_the_connection_serving(url):
    client = Client(url.grpc)
    body = request([[4, 5, 6]])
    client.send(HeadersFrame(1, data=client.headers(), flags=["END_HEADERS"]), DataFrame(1, data=body[:8]),
                RstStreamFrame(1, error_code=8))  # CANCEL, mid-request
    client.send(HeadersFrame(3, data=client.headers(), flags=["END_HEADERS"]),
                DataFrame(3, data=body, flags=["END_STREAM"]))
    _, message, trailers, _ = client.answer(3)
    assert status(trailers) == "0" and output(message).tolist() == [[4, 5, 6]]


def test_an_unknown_method_is_unimplemented(url):
    client = Client(url.grpc)
    client.send(HeadersFrame(1, data=client.headers("/inference.GRPCInferenceService/NoSuch"), flags=["END_HEADERS"]),
                DataFrame(1, data=b"\0\0\0\0\0", flags=["END_STREAM"]))
    _, _, trailers, _ = client.answer(1)
    assert status(trailers) == "12"  # UNIMPLEMENTED
