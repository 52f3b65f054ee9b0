"""Fuzz the request parsers: every input must parse or be refused with a 4xx ServiceError.

Anything else a parser raises (a 500 for the client) is a crash: atheris saves the input as
crash-<sha1> and stops. Targets, each fed raw bytes:

  v2         V2 infer body and Inference-Header-Content-Length (JSON and binary tensors)
  task       a :predict / generate JSON body: instances (numbers, named features, base64
             images) and the generation parameters
  image      an uploaded image (PNG or JPEG, through Pillow), resized whole and prepared as
             the digits were (service/ink.py: crop to the ink, fit, area average)
  multipart  a multipart/form-data :predict body (files are instances, fields parameters)
  inflate    a gzip or deflate Content-Encoding body
  grpc       a ModelInferRequest message (protobuf) through the gRPC codec

    pip install -e '.[fuzz]'
    python bench/fuzz_parsers.py v2 -max_total_time=60      # atheris, libFuzzer's flags
    python bench/fuzz_parsers.py multipart crash-<sha1>      # replay what it found
    python bench/fuzz_parsers.py all --hypothesis 5000       # without atheris: Hypothesis

docs/RELIABILITY.md has the runs made so far and what they found.
"""

import argparse
import asyncio
import base64
import gzip
import io
import logging
import sys
import tempfile
import zlib
from pathlib import Path

try:
    import atheris
except ImportError:  # the Hypothesis engine below needs no native build
    atheris = None


def _setup() -> None:
    """Import what is fuzzed (under atheris' instrumentation, when it runs) and build fixtures."""
    global InvalidInput, Limits, ServiceError, HTTPException, decode_request, parse_json, Request
    global parse_instances, validate, LatentParams, decode_ink, v1, inflate, LIMITS, DIGITS, TABLE, PREPARE
    global grpc_parse, grpc_decode, Malformed, pb
    from starlette.exceptions import HTTPException
    from starlette.requests import Request

    from service.config import DataSpec, ImagePrep
    from service.errors import InvalidInput, ServiceError
    from service.grpc.codec import decode_request as grpc_decode
    from service.grpc.protocol import pb
    from service.grpc.server import lenient_parser
    from service.grpc.servicer import Malformed
    from service.imaging import decode_ink
    from service.protocol import v1
    from service.protocol.body import _inflate as inflate
    from service.protocol.v2_codec import Limits, decode_request, parse_json
    from service.tasks.instances import parse_instances
    from service.tasks.params import LatentParams, validate
    from service.tasks.units import Units

    LIMITS = Limits(max_tensor_elements=1 << 20, max_json_depth=32)
    DIGITS = Units(DataSpec(shape=[1, 8, 8], raw_range=(0, 16), network_range=(-1, 1),
                            image={"height": 8, "width": 8}))
    TABLE = Units(DataSpec(shape=[4]))
    PREPARE = ImagePrep()
    grpc_parse = lenient_parser(pb.ModelInferRequest)


logging.getLogger("python_multipart").setLevel(logging.ERROR)  # one line per malformed input
FEATURES = ["age", "sex", "bmi", "bp"]
BOUNDARY = "fuzzboundary"


# ------------------------------------------------------------------------------ targets

def fuzz_v2(data: bytes) -> None:
    # First byte: how the header length is given; then (for mode 1) two bytes of it.
    mode = data[0] % 3 if data else 0
    if mode == 1:
        header, body = str(int.from_bytes(data[1:3], "little")), data[3:]
    elif mode == 2:
        header, body = data[1:5].decode("latin-1"), data[5:]
    else:
        header, body = None, data[1:]
    decode_request(body, header, LIMITS)


def fuzz_task(data: bytes) -> None:
    document = parse_json(data, LIMITS.max_json_depth)
    if not isinstance(document, dict):
        return
    instances = document.pop("instances", None)
    for units, features in ((DIGITS, None), (TABLE, FEATURES)):
        try:
            parse_instances(instances, units, features)
        except InvalidInput:
            pass
    validate(LatentParams, document, "gan")


def fuzz_image(data: bytes) -> None:
    decode_ink(data, 8, 8)
    decode_ink(data, 8, 8, prepare=PREPARE)


def fuzz_multipart(data: bytes) -> None:
    # "app" in the scope, as in the server: Starlette then turns a malformed form into a 400.
    scope = {"type": "http", "method": "POST", "path": "/", "query_string": b"", "app": None,
             "headers": [(b"content-type", f"multipart/form-data; boundary={BOUNDARY}".encode())]}

    async def receive():
        return {"type": "http.request", "body": data, "more_body": False}

    asyncio.run(v1._form(Request(scope, receive), data))


def fuzz_inflate(data: bytes) -> None:
    inflate(data[1:], "gzip" if data[:1] < b"\x80" else "deflate", 1 << 20)


def fuzz_grpc(data: bytes) -> None:
    request = grpc_parse(data)
    if not isinstance(request, Malformed):  # which the servicer answers with INVALID_ARGUMENT
        grpc_decode(request, LIMITS)


TARGETS = {"v2": fuzz_v2, "task": fuzz_task, "image": fuzz_image, "multipart": fuzz_multipart,
           "inflate": fuzz_inflate, "grpc": fuzz_grpc}


def checked(target):
    """A parser may refuse with a 4xx ServiceError; anything else escapes, as a crash."""

    def one_input(data: bytes) -> None:
        try:
            target(data)
        except (ServiceError, HTTPException) as exc:
            if exc.status_code >= 500:
                raise AssertionError(f"a {exc.status_code} for a client's input: {exc}") from exc

    return one_input


# ------------------------------------------------------------------------------ seeds

def _png(size: int = 8, mode: str = "L", exif: bool = False, fmt: str = "PNG") -> bytes:
    from PIL import Image

    image = Image.new(mode, (size, size), 0)
    out = io.BytesIO()
    extra = {}
    if exif:
        tags = Image.Exif()
        tags[0x0112] = 6  # orientation: rotate
        extra["exif"] = tags.tobytes()
    image.save(out, format=fmt, **extra)
    return out.getvalue()


def seeds(name: str) -> list[bytes]:
    """Valid inputs to start from: mutations of these reach past the first checks."""
    json_request = b'{"id":"1","inputs":[{"name":"x","shape":[2,2],"datatype":"FP32","data":[1,2,3,4]}]}'
    header = (b'{"inputs":[{"name":"x","shape":[2],"datatype":"BYTES","parameters":{"binary_data_size":10}}],'
              b'"outputs":[{"name":"y","parameters":{"binary_data":true}}]}')
    binary = header + b"\x01\x00\x00\x00a\x01\x00\x00\x00b"
    png = _png()
    if name == "v2":
        return [b"\x00" + json_request, b"\x01" + len(header).to_bytes(2, "little") + binary,
                b"\x02" + str(len(header)).encode().ljust(4) + binary]
    if name == "task":
        image = base64.b64encode(png)
        return [b'{"instances":[[' + b",".join([b"1"] * 64) + b']],"num_samples":2,"seed":3}',
                b'{"instances":[{"age":1,"sex":0,"bmi":2.5,"bp":1}],"temperature":0.5}',
                b'{"instances":[{"image_b64":"data:image/png;base64,' + image + b'"}],"format":"png"}']
    if name == "image":
        return [png, _png(12, "RGBA"), _png(8, "RGB", exif=True, fmt="JPEG"), _png(8, "P")]
    if name == "multipart":
        part = (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.png\"\r\n"
                "Content-Type: image/png\r\n\r\n").encode() + png
        field = f"\r\n--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"top_k\"\r\n\r\n3".encode()
        return [part + field + f"\r\n--{BOUNDARY}--\r\n".encode()]
    if name == "inflate":
        return [b"\x00" + gzip.compress(json_request), b"\xff" + zlib.compress(json_request)]
    if name == "grpc":
        raw = pb.ModelInferRequest(model_name="m", id="1", raw_input_contents=[b"\x01\x00\x00\x00a\x00\x00\x00\x00"])
        raw.inputs.add(name="x", datatype="BYTES", shape=[2])
        raw.outputs.add(name="y")
        typed = pb.ModelInferRequest(model_name="m")
        typed.inputs.add(name="x", datatype="INT8", shape=[2, 2]).contents.int_contents.extend([1, -2, 3, 127])
        typed.parameters["every"].int64_param = 2
        return [raw.SerializeToString(), typed.SerializeToString()]
    raise KeyError(name)


# ------------------------------------------------------------------------------ engines

def run_atheris(name: str, libfuzzer_args: list[str]) -> None:
    """libFuzzer's flags and paths: a corpus folder, or crash files to replay. With no path,
    a fresh corpus of seeds."""
    if not any(not arg.startswith("-") for arg in libfuzzer_args):
        corpus = Path(tempfile.mkdtemp(prefix=f"fuzz-{name}-"))
        for i, seed in enumerate(seeds(name)):
            (corpus / f"seed-{i}").write_bytes(seed)
        libfuzzer_args = [*libfuzzer_args, str(corpus)]
    atheris.Setup([sys.argv[0], *libfuzzer_args], checked(TARGETS[name]))
    atheris.Fuzz()


def run_hypothesis(name: str, examples: int) -> None:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    @st.composite
    def mutated(draw, seed: bytes) -> bytes:
        data = bytearray(seed)
        for _ in range(draw(st.integers(1, 8))):
            at = draw(st.integers(0, max(0, len(data) - 1)))
            op = draw(st.sampled_from(["flip", "insert", "delete", "splice"]))
            if op == "flip" and data:
                data[at] = draw(st.integers(0, 255))
            elif op == "insert":
                data[at:at] = draw(st.binary(min_size=1, max_size=8))
            elif op == "delete":
                del data[at : at + draw(st.integers(1, 16))]
            else:
                data[at:at] = data[draw(st.integers(0, max(0, len(data) - 1))):][:32]
        return bytes(data)

    inputs = st.one_of(st.binary(max_size=512), st.sampled_from(seeds(name)).flatmap(mutated))

    @settings(max_examples=examples, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(data=inputs)
    def fuzz(data):
        checked(TARGETS[name])(data)

    fuzz()
    print(f"{name}: {examples} inputs, no crash")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("target", choices=[*TARGETS, "all"])
    parser.add_argument("--hypothesis", type=int, metavar="N", help="N inputs per target with Hypothesis")
    args, libfuzzer_args = parser.parse_known_args()
    names = list(TARGETS) if args.target == "all" else [args.target]
    if args.hypothesis or atheris is None:
        _setup()
        for name in names:
            run_hypothesis(name, args.hypothesis or 2000)
    elif len(names) > 1:
        parser.error("atheris fuzzes one target per process; name it (or use --hypothesis)")
    else:
        with atheris.instrument_imports(include=["service", "PIL", "python_multipart"]):  # coverage guides it
            _setup()
        run_atheris(names[0], libfuzzer_args)


if __name__ == "__main__":
    main()
