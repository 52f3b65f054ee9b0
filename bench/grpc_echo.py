"""grpcio's own floor: a gRPC server whose ModelInfer answers a prepared reply, no model.

Run: python bench/grpc_echo.py PORT ROWS [aio|sync|bridge]

The request is taken as bytes and never parsed; the reply is the serialized ModelInferResponse
that modelserve sends for ROWS rows of the benchmark MLP (one FP32 output of shape [ROWS, 10]),
so the bytes on the wire match the real call's. Three servers, with grpcio set as modelserve sets
it (service/grpc/__init__.py):

- aio: grpc.aio on uvloop, the reply from a coroutine (what modelserve ran before);
- sync: grpcio's synchronous server, the reply from a pool thread;
- bridge: the synchronous server handing each call to a coroutine on a uvloop event loop and
  waiting for it (service/grpc/bridge.py), which is what modelserve pays before its own work.

bench/bare_uvicorn.py is the same floor for HTTP.
"""

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


if __name__ == "__main__":
    port, answer = int(sys.argv[1]), reply(int(sys.argv[2]))
    kind = sys.argv[3] if len(sys.argv) > 3 else "aio"
    if kind == "aio":
        uvloop.run(serve_aio(port, answer))
    else:
        serve_sync(port, answer, through_loop=kind == "bridge")
