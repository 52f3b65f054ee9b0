"""The Prometheus collectors of the service, nothing else. Names follow Triton's, prefixed."""

from prometheus_client import Counter, Gauge, Histogram

MODEL = ("model", "version")
# The request series say which transport a request came by: "http" or "grpc".
REQUEST = (*MODEL, "protocol")

REQUEST_SUCCESS = Counter(
    "modelserve_inference_request_success", "Inference requests that succeeded", REQUEST
)
REQUEST_FAILURE = Counter(
    "modelserve_inference_request_failure",
    "Inference requests that failed, by reason (invalid, unavailable, overloaded, timeout, internal)",
    (*REQUEST, "reason"),
)
INFERENCE_COUNT = Counter(
    "modelserve_inference_count", "Items inferred (rows of a batched request)", REQUEST
)
EXEC_COUNT = Counter(
    "modelserve_inference_exec_count", "Graph executions (one batch is one execution)", MODEL
)
PENDING_REQUESTS = Gauge(
    "modelserve_inference_pending_requests",
    "Requests waiting in a batcher queue",
    MODEL,
    multiprocess_mode="livesum",
)

_LATENCY_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
)
REQUEST_DURATION = Histogram(
    "modelserve_request_duration_seconds", "Inference request time, end to end in the service",
    REQUEST, buckets=_LATENCY_BUCKETS,
)
QUEUE_DURATION = Histogram(
    "modelserve_queue_duration_seconds", "Time a request waited for its batch", MODEL,
    buckets=_LATENCY_BUCKETS,
)
COMPUTE_DURATION = Histogram(
    "modelserve_compute_duration_seconds", "Time a graph execution took", MODEL,
    buckets=_LATENCY_BUCKETS,
)
BATCH_SIZE = Histogram(
    "modelserve_batch_size", "Rows per graph execution", MODEL,
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
)
MODEL_LOADED = Gauge(
    "modelserve_model_loaded",
    "1 for each model version that is loaded, labelled with the execution provider it runs on",
    (*MODEL, "provider"),
    multiprocess_mode="livemax",
)
MODEL_LOAD_FAILURES = Counter(
    "modelserve_model_load_failure", "Model version loads that failed", MODEL
)
OUT_OF_DISTRIBUTION = Counter(
    "modelserve_out_of_distribution",
    "Instances a model's guard found out of distribution (flagged or refused)",
    MODEL,
)

# Sequence models (service/tasks/translation.py): per generated token, as LLM servers report them.
TIME_TO_FIRST_TOKEN = Histogram(
    "modelserve_time_to_first_token_seconds",
    "From a sequence request's arrival to its first output token", MODEL, buckets=_LATENCY_BUCKETS,
)
INTER_TOKEN_LATENCY = Histogram(
    "modelserve_inter_token_latency_seconds",
    "Between consecutive output tokens of one sequence", MODEL, buckets=_LATENCY_BUCKETS,
)
GENERATED_TOKENS = Counter(
    "modelserve_generated_tokens", "Output tokens generated (end-of-sequence excluded)", MODEL
)
RUNNING_SEQUENCES = Gauge(
    "modelserve_running_sequences", "Sequences being decoded now (in-flight batching)", MODEL,
    multiprocess_mode="livesum",
)
