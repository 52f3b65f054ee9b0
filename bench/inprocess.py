"""CPU per V2 infer request of modelserve's HTTP path in one process: no sockets, no other process.

    .venv/bin/python bench/inprocess.py [--trees /work/main,.] [--kinds binary64,json64] [--rounds 2]
                                        [--requests 150] [--config batched|plain] [--access-log]
    .venv/bin/python bench/inprocess.py --trees .+--access-log,.+--no-access-log --kinds json1 --rounds 5
    .venv/bin/python bench/inprocess.py --trees /work/main,. --kinds translation --connections 16 --requests 400 --rounds 6

On a machine shared with other work, req/s and even a server's CPU per request over loopback
move by 10-20% from run to run. This drives the server's real HTTP protocol (uvicorn's
httptools parser and service.http_infer, the app built as `python -m service` builds it, the
benchmark's MLP from bench/models.py) over 64 in-memory connections, each sending its next
request as soon as its answer is written, and reads the process's CPU time per request: what
is left to chance is the kernel's share (socket reads and writes, not counted here) and the
caches. Each tree (a checkout holding `service/`) runs in a process of its own, the trees in
turn for --rounds rounds; the median of each is printed with its ratio to the first tree's, and
the median of each round's ratio to the first tree's run in that round.

Kind `translation` streams translations instead (generate_stream of the tree's own
models/en-fr-numbers, English numbers from bench/translation.py's texts, each connection sending
its next one as soon as the last event of its stream is written): µs of CPU a translation with
`--connections` streams at once, 16 or 1 for the in-flight batching target of issue 13.

A tree may carry modelserve flags after a '+' (`.+--no-access-log`, `/work/main+--access-log`),
so one tree can be A/B'd against itself with other settings. The access log is off unless
--access-log or a tree's flags turn it on; when on, it is configured as `python -m service`
configures it and written to a file (what a server's stderr redirected to a log is), so the
write system calls count.
"""

import argparse
import asyncio
import json
import logging
import logging.config
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
CONNECTIONS = 64


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trees", default=".",
                        help="comma-separated code trees, each optionally with modelserve flags after a '+' "
                             "(.+--no-access-log); the first is the reference")
    parser.add_argument("--kinds", default="binary64,json64", help="json1, json64, binary64")
    parser.add_argument("--config", choices=["batched", "plain"], default="batched")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--requests", type=int, default=150, help="measured requests per connection")
    parser.add_argument("--connections", type=int, default=CONNECTIONS, help="connections at once")
    parser.add_argument("--access-log", action=argparse.BooleanOptionalAction, default=False,
                        help="modelserve's per-request access log (off by default) for trees whose flags don't say")
    parser.add_argument("--serve", nargs=3, metavar=("KIND", "CONFIG", "REQUESTS"), help=argparse.SUPPRESS)
    parser.add_argument("--serve-flags", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        print(serve(args.serve[0], args.serve[1], int(args.serve[2]), args.serve_flags.split(), args.connections))
        return
    default_flags = "--access-log" if args.access_log else "--no-access-log"
    trees = args.trees.split(",")
    for kind in args.kinds.split(","):
        found: dict[str, list[float]] = {tree: [] for tree in trees}
        for _ in range(args.rounds):
            for tree in trees:
                folder, _, flags = tree.partition("+")
                # The tree's own service/ wins: the child runs with the tree as its working folder.
                out = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--serve", kind, args.config,
                                      str(args.requests), f"--connections={args.connections}",
                                      f"--serve-flags={default_flags} {flags.replace('+', ' ')}"],
                                     cwd=Path(folder).resolve(), capture_output=True, text=True, check=True)
                found[tree].append(float(out.stdout.split()[-1]))
        reference = statistics.median(found[trees[0]])
        for tree in trees:
            median = statistics.median(found[tree])
            # Each round's ratio to the first tree's run of the same round, whose neighbours' load
            # it shared: steadier on a busy machine than the ratio of the medians.
            paired = statistics.median(mine / first for mine, first in zip(found[tree], found[trees[0]]))
            unit = "translation" if kind == "translation" else "request"
            print(f"{kind} ({args.config}) {tree}: median {median:.1f} µs CPU a {unit} ({median / reference:.3f}×, "
                  f"median of the rounds' ratios {paired:.3f}×); runs {', '.join(f'{v:.1f}' for v in found[tree])}")
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}; {args.connections} connections, "
          f"{args.requests} measured requests each per run")


def serve(kind: str, config: str, requests: int, flags: list[str], connections: int = CONNECTIONS) -> float:
    """One run: the app of the working folder's tree with modelserve `flags`, driven in this
    process; µs CPU a request (a translation for kind `translation`)."""
    sys.path.insert(0, os.getcwd())
    sys.path.insert(1, str(BENCH))
    import cases
    import numpy as np
    import uvloop
    from pydantic_settings import CliApp

    import models
    from service import logs
    from service.settings import Settings

    folder = Path(tempfile.mkdtemp())
    if kind == "translation":
        repository = folder / "models"
        shutil.copytree(Path("models") / "en-fr-numbers", repository / "en-fr-numbers")  # the tree's own
    else:
        repository = models.write_repository(folder, config == "batched")
    # As `python -m service` does: the flags parsed into settings, handed to the app by environment.
    settings = CliApp.run(Settings, cli_args=["--model-repository", str(repository), "--grpc-port", "0", *flags])
    os.environ.update(settings.to_env())
    if settings.access_log:
        # stderr to a file, as a server's log redirected: the lines' write calls are real ones.
        log_file = open(folder / "server.log", "wb")  # noqa: SIM115  (open until the process ends)
        os.dup2(log_file.fileno(), 2)
        logging.config.dictConfig(logs.config(settings.log_level))
    else:
        logging.disable(logging.CRITICAL)
    if kind == "translation":
        import translation  # bench/translation.py: the English numbers its clients send

        bodies = [json.dumps({"text_input": text}).encode() for text in translation.texts()]
        streams = [b"POST /v2/models/en-fr-numbers/generate_stream HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
                   b"application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body) for body in bodies]
        return uvloop.run(_drive(streams, requests, connections))
    x = np.random.default_rng(0).random((1 if kind == "json1" else 64, 64)).astype(np.float32).round(4)
    body, headers = cases.binary_body(x) if kind == "binary64" else (cases.json_body(x), {"Content-Type": "application/json"})
    head = ["POST /v2/models/mlp/infer HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {len(body)}",
            *(f"{k}: {v}" for k, v in headers.items())]
    request = ("\r\n".join(head) + "\r\n\r\n").encode() + body
    return uvloop.run(_drive([request], requests, connections))


async def _drive(requests_sent: list[bytes], requests: int, connections: int) -> float:
    """`connections` in-memory connections, each sending the next of `requests_sent` (in turn,
    from its own offset) as soon as its answer has been written; µs CPU an answer."""
    from uvicorn.config import Config
    from uvicorn.lifespan.on import LifespanOn
    from uvicorn.server import ServerState

    from service import http_infer

    loop = asyncio.get_running_loop()
    config = Config("service.app:create_app_from_env", factory=True, http=http_infer.protocol(10.0), log_config=None)
    config.load()
    lifespan = LifespanOn(config)
    await lifespan.startup()
    app = config.loaded_app
    while not hasattr(app, "state"):  # under uvicorn's own wrappers
        app = app.app
    while not (app.state.infer.dataplane and app.state.infer.dataplane.ready()):
        await asyncio.sleep(0.05)
    answers = _Answers(loop)
    state = ServerState()
    for k in range(connections):
        protocol = config.http_protocol_class(config=config, server_state=state, app_state={}, _loop=loop)
        transport = _Transport(loop, protocol, requests_sent, answers, k * 37)
        protocol.connection_made(transport)
        protocol.data_received(transport.request)
    await answers.wait(connections * 20)  # warm: the runner settles inline, arenas allocated
    started = time.process_time()
    await answers.wait(connections * requests)
    return (time.process_time() - started) / (connections * requests) * 1e6


class _Answers:
    def __init__(self, loop):
        self.loop, self.count, self.target, self.done = loop, 0, 0, None

    def wait(self, count: int) -> asyncio.Future:
        self.count, self.target, self.done = 0, count, self.loop.create_future()
        return self.done

    def add(self) -> None:
        self.count += 1
        if self.count == self.target and not self.done.done():
            self.done.set_result(None)


class _Transport(asyncio.Transport):
    """A connection whose client sends its next request as soon as an answer is written: a
    whole response, or a chunked stream's last chunk."""

    def __init__(self, loop, protocol, requests: list[bytes], answers: _Answers, offset: int = 0):
        super().__init__()
        self.loop, self.protocol, self.requests, self.answers = loop, protocol, requests, answers
        self.sent = offset
        self.streaming = False  # inside a chunked response

    def get_extra_info(self, name, default=None):
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 50000)}.get(name, default)

    @property
    def request(self) -> bytes:
        return self.requests[self.sent % len(self.requests)]

    def write(self, data) -> None:
        if not self.streaming:  # a response's first write
            if not data.startswith(b"HTTP/1.1 200"):
                sys.exit(f"the server answered: {bytes(data[:400])!r}")
            self.streaming = b"transfer-encoding: chunked" in data
        if self.streaming and not data.endswith(b"0\r\n\r\n"):
            return  # a token event: the stream goes on
        self.streaming = False
        self.answers.add()
        self.sent += 1
        self.loop.call_soon(self.protocol.data_received, self.request)

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


if __name__ == "__main__":
    main()
