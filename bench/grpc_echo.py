"""grpcio's own floor: a gRPC server whose ModelInfer answers a prepared reply, no model.

Run: python bench/grpc_echo.py PORT ROWS [aio|sync|bridge|h2|asyncio]

The request is taken as bytes and never parsed; the reply is the serialized ModelInferResponse
that modelserve sends for ROWS rows of the benchmark MLP (one FP32 output of shape [ROWS, 10]),
so the bytes on the wire match the real call's. Three servers, with grpcio set as modelserve sets
it (service/grpc/__init__.py):

- aio: grpc.aio on uvloop, the reply from a coroutine (what modelserve ran before);
- sync: grpcio's synchronous server, the reply from a pool thread;
- bridge: the synchronous server handing each call to a coroutine on a uvloop event loop and
  waiting for it (service/grpc/bridge.py), which is what modelserve pays before its own work
  with --grpc-transport grpcio;
- h2: an asyncio.Protocol over hyper-h2's connection state machine (every frame through h2);
- asyncio: modelserve's own HTTP/2 transport (service/grpc/h2c.py), the reply from a coroutine
  in a task (service/grpc/asyncio_server.py): what --grpc-transport asyncio pays.

bench/bare_uvicorn.py is the same floor for HTTP.
"""

import asyncio
import sys
from concurrent import futures
from pathlib import Path

import grpc
import numpy as np
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
# Importing service.grpc sets grpcio's options (read when the first server starts, not at import).
from service.grpc import bridge
from service.grpc.protocol import SERVICE_NAME, pb


def reply(rows: int) -> bytes:
    response = pb.ModelInferResponse(model_name="mlp", model_version="1")
    response.outputs.add(name="logits", datatype="FP32", shape=[rows, 10])
    response.raw_output_contents.append(np.zeros((rows, 10), np.float32).tobytes())
    return response.SerializeToString()


def handlers(infer) -> grpc.GenericRpcHandler:
    handler = grpc.unary_unary_rpc_method_handler(infer)  # no (de)serializers: bytes both ways
    return grpc.method_handlers_generic_handler(SERVICE_NAME, {"ModelInfer": handler})


async def serve_aio(port: int, answer: bytes) -> None:
    async def infer(request: bytes, context) -> bytes:
        return answer

    server = grpc.aio.server()
    server.add_generic_rpc_handlers((handlers(infer),))
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


def serve_sync(port: int, answer: bytes, through_loop: bool) -> None:
    server = grpc.server(futures.ThreadPoolExecutor(64))
    loop = uvloop.new_event_loop()

    async def infer(request: bytes, context) -> bytes:
        return answer

    infer_in_thread = bridge.unary(loop, infer) if through_loop else lambda request, context: answer
    server.add_generic_rpc_handlers((handlers(infer_in_thread),))
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    loop.run_forever() if through_loop else server.wait_for_termination()


class _H2Echo:
    """h2: hyper-h2's connection state machine for every frame, the reply from the loop."""

    def __init__(self, answer: bytes):
        import h2.config
        import h2.connection

        self.config = h2.config.H2Configuration(client_side=False, header_encoding=None)
        self.connection_class = h2.connection.H2Connection
        self.message = b"\0" + len(answer).to_bytes(4, "big") + answer

    def __call__(self):
        import h2.events

        echo = self

        class Protocol(asyncio.Protocol):
            def connection_made(self, transport):
                self.transport, self.conn = transport, echo.connection_class(config=echo.config)
                self.conn.initiate_connection()
                transport.write(self.conn.data_to_send())

            def data_received(self, data):
                for event in self.conn.receive_data(data):
                    if isinstance(event, h2.events.DataReceived):
                        self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                    elif isinstance(event, h2.events.StreamEnded):
                        stream = event.stream_id
                        self.conn.send_headers(stream, ((b":status", b"200"), (b"content-type", b"application/grpc")))
                        self.conn.send_data(stream, echo.message)
                        self.conn.send_headers(stream, ((b"grpc-status", b"0"),), end_stream=True)
                self.transport.write(self.conn.data_to_send())

        return Protocol()


async def serve_h2(port: int, answer: bytes) -> None:
    server = await asyncio.get_running_loop().create_server(_H2Echo(answer), "127.0.0.1", port)
    await server.serve_forever()


class _Prepared:
    """A reply that is already bytes, for the asyncio transport's `SerializeToString`."""

    def __init__(self, data: bytes):
        self.data = data

    def SerializeToString(self) -> bytes:
        return self.data


async def serve_asyncio(port: int, answer: bytes) -> None:
    """modelserve's asyncio transport (service/grpc/h2c.py, asyncio_server.py): each call a task
    running a coroutine on the loop, as the servicer's calls run."""
    from service.grpc.asyncio_server import _UNARY, Call
    from service.grpc.h2c import H2Connection

    reply = _Prepared(answer)

    async def infer(request: bytes, context) -> _Prepared:
        return reply

    class Server:  # what a Call asks of its server
        max_message = 64 * 2**20

    def on_headers(stream) -> None:
        stream.handler = Call(Server, stream, (_UNARY, infer, bytes), None)

    server = await asyncio.get_running_loop().create_server(lambda: H2Connection(on_headers), "127.0.0.1", port)
    await server.serve_forever()


if __name__ == "__main__":
    port, answer = int(sys.argv[1]), reply(int(sys.argv[2]))
    kind = sys.argv[3] if len(sys.argv) > 3 else "aio"
    if kind == "aio":
        uvloop.run(serve_aio(port, answer))
    elif kind == "asyncio":
        uvloop.run(serve_asyncio(port, answer))
    elif kind == "h2":
        uvloop.run(serve_h2(port, answer))
    else:
        serve_sync(port, answer, through_loop=kind == "bridge")
