"""The calls deploy/smoke.sh makes through nginx: one request per model, over HTTP or gRPC.

    python3 deploy/smoke_client.py http PORT MODELS_DIR     # the standard library only
    python deploy/smoke_client.py grpc PORT                 # needs tritonclient[grpc] and numpy
    python3 deploy/smoke_client.py prometheus PORT          # after the two above

Each model gets one request built from its metadata and its task (`request_for`): a generator
is asked for one sample with a seed (its other inputs are optional modes), a translation model
for a phrase it knows, any other model for every input with shape -1 taken as 1. Integers are 0
so that indices (a graph's edge_index) stay in range. Exits 1 if any model did not answer.
`prometheus` waits until Prometheus scrapes every replica (DNS discovery of the compose service)
and has seen the requests of both transports in their `protocol` label.
"""

import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

GENERATIVE = ("gan", "vae", "flow", "diffusion", "text-to-image")
GENERATION = {"num_samples": 1, "seed": 1, "steps": 2}
# A task whose inputs are words: a phrase in the committed model's vocabulary, and only that input.
TEXT = {"translation": {"text_input": "twenty one"}}
ONE = {"BOOL": True, "BYTES": "a", "FP16": 1.0, "FP32": 1.0, "FP64": 1.0, "BF16": 1.0}


def request_for(task: str, inputs: list[dict]) -> list[tuple[str, str, list[int], list]]:
    """(name, datatype, shape, flat values) for each input to send, from V2 metadata's inputs."""
    chosen = []
    for spec in inputs:
        name, datatype = spec["name"], spec["datatype"]
        shape = [1 if int(d) == -1 else int(d) for d in spec["shape"]]
        if task in GENERATIVE:
            if name not in GENERATION:
                continue
            value = GENERATION[name]
        elif task in TEXT:
            if name not in TEXT[task]:
                continue
            value = TEXT[task][name]
        else:
            value = ONE.get(datatype, 0)
        count = 1
        for d in shape:
            count *= d
        chosen.append((name, datatype, shape, [value] * count))
    return chosen


# ---------------------------------------------------------------------------------------- HTTP

def http(port: str, models_dir: str) -> int:
    from pathlib import Path

    base = f"http://127.0.0.1:{port}"

    def call(path, body=None, timeout=30):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(base + path, data=data, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read()), response.headers.get("X-Request-ID")

    # Ready through nginx five times in a row: both replicas up and nginx past their start-up.
    deadline, streak = time.monotonic() + 180, 0
    while streak < 5:
        try:
            status, body, _ = call("/v2/health/ready", timeout=5)
            streak += 1
        except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
            streak = 0
            if time.monotonic() > deadline:
                print(f"not ready through nginx after 180 s: {exc}")
                return 1
        time.sleep(0.5)
    print(f"GET /v2/health/ready -> {status} {body}")
    status, body, _ = call("/v2")
    print(f"GET /v2 -> {status} {body}")

    # The models the service holds, from its repository index (what the image was built with).
    _, index, _ = call("/v2/repository/index", {})
    print(f"POST /v2/repository/index -> {[(m['name'], m['version'], m['state']) for m in index]}")
    folder = Path(models_dir)
    on_disk = sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
    names = sorted({m["name"] for m in index})
    if not names:
        print("the service holds no models: nothing to infer on")
        return 1
    if on_disk != names:
        print(f"note: models/ now holds {on_disk}; the image was built with {names}")

    failed = [f"{m['name']} v{m['version']}: {m['state']} {m['reason']}" for m in index if m["state"] != "READY"]
    for name in names:
        try:
            _, meta, _ = call(f"/v2/models/{name}")
            task = meta.get("parameters", {}).get("task", "")
            inputs = [{"name": n, "datatype": t, "shape": s, "data": v} for n, t, s, v in request_for(task, meta["inputs"])]
            status, result, request_id = call(f"/v2/models/{name}/infer", {"inputs": inputs}, timeout=120)
            shapes = {o["name"]: o["shape"] for o in result["outputs"]}
            print(f"POST /v2/models/{name}/infer -> {status} v{result.get('model_version')} {shapes} (X-Request-ID {request_id})")
        except urllib.error.HTTPError as exc:
            failed.append(name)
            print(f"POST /v2/models/{name}/infer -> {exc.code} {exc.read()[:300]!r}")
        except Exception as exc:  # noqa: BLE001 - report every model, then fail
            failed.append(name)
            print(f"{name}: {type(exc).__name__}: {exc}")
    for failure in failed:
        print(f"FAILED {failure}")
    print(f"{len(names) - len(failed)} of {len(names)} models answered through nginx")
    return 1 if failed else 0


# ---------------------------------------------------------------------------------------- gRPC

def grpc(port: str) -> int:
    import queue

    import numpy as np
    import tritonclient.grpc as tg

    client = tg.InferenceServerClient(f"127.0.0.1:{port}")
    print(f"ServerReady -> {client.is_server_ready()}")
    names = [m.name for m in client.get_model_repository_index().models if m.state == "READY"]
    tasks, failed = {}, []
    for name in names:
        try:
            metadata = client.get_model_metadata(name, as_json=True)
            config = client.get_model_config(name, as_json=True)["config"]
            tasks[name] = task = config.get("parameters", {}).get("task", {}).get("string_value", "")
            inputs = []
            for input_name, datatype, shape, values in request_for(task, metadata["inputs"]):
                tensor = tg.InferInput(input_name, shape, datatype)
                dtype = tg.triton_to_np_dtype(datatype)
                tensor.set_data_from_numpy(np.array(values, dtype=dtype).reshape(shape))
                inputs.append(tensor)
            # x-request-id metadata crosses nginx (grpc_set_header) into the replica's log line.
            response = client.infer(name, inputs, request_id=f"smoke-{name}",
                                    headers={"x-request-id": f"smoke-grpc-{name}"}).get_response()
            print(f"ModelInfer {name} -> v{response.model_version} id {response.id} "
                  f"{ {o.name: list(o.shape) for o in response.outputs} }")
        except Exception as exc:  # noqa: BLE001 - report every model, then fail
            failed.append(name)
            print(f"ModelInfer {name} -> {type(exc).__name__}: {exc}")

    # A generation stream: one response per requested step, then the final one.
    generators = sorted(n for n, t in tasks.items() if t in ("diffusion", "text-to-image"))
    if generators:
        name = generators[0]
        answers = queue.Queue()
        client.start_stream(callback=lambda result, error: answers.put(error or result))
        inputs = [tg.InferInput("num_samples", [1], "INT32"), tg.InferInput("steps", [1], "INT32")]
        inputs[0].set_data_from_numpy(np.array([2], np.int32))
        inputs[1].set_data_from_numpy(np.array([4], np.int32))
        client.async_stream_infer(name, inputs, request_id=f"smoke-stream-{name}")
        events = []
        while True:
            answer = answers.get(timeout=120)
            if not isinstance(answer, tg.InferResult):
                failed.append(f"{name} (stream)")
                print(f"ModelStreamInfer {name} -> {answer}")
                break
            response = answer.get_response()
            events.append(response.parameters["event"].string_param)
            if response.parameters["triton_final_response"].bool_param:
                print(f"ModelStreamInfer {name} -> {len(events)} responses {events}, "
                      f"samples {list(answer.as_numpy('samples').shape)}")
                break
        client.stop_stream()
    else:
        failed.append("no diffusion model to stream from")
    for failure in failed:
        print(f"FAILED {failure}")
    print(f"{len(names) - len([f for f in failed if f in names])} of {len(names)} models answered ModelInfer through nginx")
    return 1 if failed else 0


# ---------------------------------------------------------------------------------- Prometheus

def prometheus(port: str, replicas: int = 2, timeout_s: float = 150) -> int:
    base = f"http://127.0.0.1:{port}/api/v1"

    def get(path: str):
        with urllib.request.urlopen(base + path, timeout=10) as response:
            return json.loads(response.read())["data"]

    query = "/query?query=" + urllib.parse.quote("sum by (protocol) (modelserve_inference_request_success_total)")
    deadline, up, seen = time.monotonic() + timeout_s, [], {}
    # Discovery, the first scrape and the next (15 s apart) take up to a minute.
    while time.monotonic() < deadline:
        try:
            targets = get("/targets")["activeTargets"]
            up = sorted(t["labels"]["instance"] for t in targets
                        if t["labels"].get("job") == "modelserve" and t["health"] == "up")
            seen = {r["metric"].get("protocol"): float(r["value"][1]) for r in get(query)["result"]}
        except (urllib.error.URLError, ConnectionError, TimeoutError, KeyError):
            pass
        if len(up) >= replicas and seen.get("http", 0) > 0 and seen.get("grpc", 0) > 0:
            break
        time.sleep(3)
    print(f"Prometheus: modelserve targets up {up}")
    print(f"Prometheus: sum by (protocol) (modelserve_inference_request_success_total) -> {seen}")
    if len(up) < replicas or not (seen.get("http", 0) > 0 and seen.get("grpc", 0) > 0):
        print(f"FAILED: wanted {replicas} replicas up and successes of both protocols within {timeout_s:g} s")
        return 1
    return 0


if __name__ == "__main__":
    mode, *rest = sys.argv[1:]
    sys.exit({"http": http, "grpc": grpc, "prometheus": prometheus}[mode](*rest))
