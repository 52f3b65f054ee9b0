"""grpcio's own floor: a grpc.aio server whose ModelInfer answers a prepared reply, no model.

Run: python bench/grpc_echo.py PORT ROWS

The request is taken as bytes and never parsed; the reply is the serialized ModelInferResponse
that modelserve sends for ROWS rows of the benchmark MLP (one FP32 output of shape [ROWS, 10]),
so the bytes on the wire match the real call's. On uvloop, as uvicorn runs modelserve. What this
costs per call is what any grpc.aio server pays before doing any work; bench/bare_uvicorn.py is
the same floor for HTTP.
"""

import asyncio
import sys
from pathlib import Path

import grpc
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from service.grpc.protocol import SERVICE_NAME, pb

try:
    import uvloop
except ImportError:  # asyncio's own loop: slower, still a floor
    uvloop = None


def reply(rows: int) -> bytes:
    response = pb.ModelInferResponse(model_name="mlp", model_version="1")
    response.outputs.add(name="logits", datatype="FP32", shape=[rows, 10])
    response.raw_output_contents.append(np.zeros((rows, 10), np.float32).tobytes())
    return response.SerializeToString()


async def serve(port: int, rows: int) -> None:
    answer = reply(rows)

    async def infer(request: bytes, context) -> bytes:
        return answer

    server = grpc.aio.server()
    handler = grpc.unary_unary_rpc_method_handler(infer)  # no (de)serializers: bytes both ways
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME, {"ModelInfer": handler}),))
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


if __name__ == "__main__":
    main = serve(int(sys.argv[1]), int(sys.argv[2]))
    uvloop.run(main) if uvloop else asyncio.run(main)
