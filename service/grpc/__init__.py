"""gRPC transport only: inference.GRPCInferenceService over grpcio, beside the HTTP server."""

import os

# grpcio's EventEngine listener reads and writes each connection in a pool of its own threads,
# and hands every event to the thread that polls the completion queue: on one core those hops
# cost more than the whole HTTP request (bench/grpc_echo.py). Its earlier listener does the
# I/O in the polling thread. Set before grpc is first imported; a GRPC_EXPERIMENTS of the
# operator's own wins.
os.environ.setdefault("GRPC_EXPERIMENTS", "-event_engine_listener")
