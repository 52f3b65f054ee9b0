"""gRPC transport only: inference.GRPCInferenceService over grpc.aio, beside the HTTP server."""
