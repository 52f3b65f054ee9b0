"""Run the curl examples of docs/TASKS.md against a live server: write their answers in, or check them.

    .venv/bin/python -m docs.tasks_doc                  # start a server on models/, rewrite the answers
    .venv/bin/python -m docs.tasks_doc --check          # exit 1 with a diff where doc and server differ
    .venv/bin/python -m docs.tasks_doc --url http://127.0.0.1:8000 [DOC.md ...]   # a running server

The convention, for anyone adding an example to a doc:

- A ```sh block holding one curl command against http://localhost:8000 (or localhost:8000) is an
  example. It runs with bash from the repository root against the live server, so pipes into jq
  or cut and files such as `-F file=@docs/images/digit-9.png` work as a reader would run them.
- The fenced block right after it (only blank lines between) is its answer, filled in by this
  script: ```json (stdout parsed as JSON, one document or one per line, pretty-printed to fit
  100 columns) or ```text (stdout as it is: server-sent events, status lines). Write it empty.
- An example with no answer block must print nothing: it writes files (`-o docs/images/x.png`;
  such a block may hold several curls), and those are what is rewritten, or compared byte for
  byte. Write under docs/: the commands run in a scratch copy of it, never in the checkout.
- A ```sh block with no such curl (`NINE='[...]'`) is setup: it runs before each later example.
- An answer block whose info string ends in `varies` (```text varies) is written but never
  compared: timings, anything not deterministic. Say so in the prose too.

Everything else (prose, tables, other code blocks) is left as it is. Answers are compared
exactly but for their decimal numbers, which may differ in their last float32 digits: the models
are deterministic on one machine and generation is seeded, but ONNX Runtime's kernels for one
CPU (AVX2, AVX-512, AMX) add in another order than for another.
"""

import argparse
import contextlib
import difflib
import filecmp
import json
import math
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "TASKS.md"
DOC_HOST = "localhost:8000"
ANSWER_KINDS = ("json", "text")
UNCHECKED = "varies"
WIDTH = 100  # of a pretty-printed JSON line
TIMEOUT_S = 300  # one example; a 64-sample diffusion grid takes seconds
# A decimal number with a fraction or an exponent (integers, labels and counts stay exact), and
# how far two of them may be apart: float32 sums in another order than the doc's machine.
DECIMAL = re.compile(r"-?\d+(?:\.\d+(?:[eE][-+]?\d+)?|[eE][-+]?\d+)")
REL_TOL, ABS_TOL = 1e-4, 1e-7


@dataclass
class Block:
    """A fenced block: `start` is the line of its opening fence, `end` that of its closing one."""

    start: int
    end: int
    info: str
    body: str

    @property
    def kind(self) -> str:
        return self.info.split()[0] if self.info.split() else ""


@dataclass
class Example:
    command: Block
    answer: Block | None
    setup: str  # the setup blocks above it, in order

    @property
    def checked(self) -> bool:
        return self.answer is not None and self.answer.info.split()[-1] != UNCHECKED

    def where(self, doc: Path) -> str:
        return f"{doc.name}:{self.command.start + 1}"


@dataclass
class Outcome:
    """What the server answered: each example's answer text, and the files the examples wrote."""

    examples: list[tuple[Example, str]]
    files: dict[str, bytes]  # path under the repository -> what the examples wrote, where it differs
    text: str  # the doc with every answer block filled in


def blocks(lines: list[str]) -> list[Block]:
    found, opened = [], None
    for number, line in enumerate(lines):
        if opened is None and line.startswith("```"):
            fence = line[: len(line) - len(line.lstrip("`"))]
            opened = (number, fence, line[len(fence):].strip())
        elif opened is not None and line.rstrip() == opened[1]:
            start, _, info = opened
            found.append(Block(start, number, info, "\n".join(lines[start + 1:number])))
            opened = None
    if opened is not None:
        raise ValueError(f"line {opened[0] + 1}: a fenced block that never closes")
    return found


def examples(text: str) -> list[Example]:
    lines = text.split("\n")
    found, setup = [], []
    every = blocks(lines)
    for i, block in enumerate(every):
        if block.kind != "sh":
            continue
        if "curl" not in block.body or DOC_HOST not in block.body:
            setup.append(block.body)
            continue
        following = every[i + 1] if i + 1 < len(every) else None
        answer = None
        if following and following.kind in ANSWER_KINDS and not any(
                line.strip() for line in lines[block.end + 1:following.start]):
            answer = following
        found.append(Example(block, answer, "\n".join(setup)))
    return found


def render(example: Example, stdout: str) -> str:
    """The answer block's body for what the command printed."""
    if example.answer is None:
        if stdout.strip():
            raise ValueError("prints an answer but has no ```json or ```text block after it")
        return ""
    if example.answer.kind == "text":
        return "\n".join(line.rstrip() for line in stdout.rstrip("\n").split("\n"))
    try:
        documents = [json.loads(stdout)]
    except json.JSONDecodeError:
        try:
            documents = [json.loads(line) for line in stdout.splitlines() if line.strip()]
        except json.JSONDecodeError as exc:
            raise ValueError(f"its output is not JSON ({exc}); use a ```text block:\n{stdout[:500]}") from None
    return "\n".join(pretty(document) for document in documents)


def pretty(value, column: int = 0, indent: int = 0) -> str:
    """JSON on one line where it fits in WIDTH columns, else one member or item per line."""
    inline = json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
    if column + len(inline) <= WIDTH or not isinstance(value, dict | list) or not value:
        return inline
    pad = " " * (indent + 2)
    if isinstance(value, dict):
        items = []
        for key, item in value.items():
            head = f"{pad}{json.dumps(key, ensure_ascii=False)}: "
            items.append(head + pretty(item, len(head), indent + 2))
        return "{\n" + ",\n".join(items) + "\n" + " " * indent + "}"
    items = [pad + pretty(item, len(pad), indent + 2) for item in value]
    return "[\n" + ",\n".join(items) + "\n" + " " * indent + "]"


def run(doc: Path, url: str) -> Outcome:
    """Every example of `doc` against the server at `url`, from a scratch copy of the repository
    root whose docs/ is a copy: files the examples write land there, not in the checkout."""
    text = doc.read_text()
    host = urlsplit(url).netloc
    answered = []
    with tempfile.TemporaryDirectory(prefix="tasks-doc-") as scratch:
        workdir = Path(scratch) / "repo"
        workdir.mkdir()
        for entry in ROOT.iterdir():
            if entry.name != "docs":
                (workdir / entry.name).symlink_to(entry)
        shutil.copytree(ROOT / "docs", workdir / "docs", ignore=shutil.ignore_patterns("__pycache__"))
        before = {p.name for p in workdir.iterdir()}
        for example in examples(text):
            script = f"set -eo pipefail\n{example.setup}\n{example.command.body.replace(DOC_HOST, host)}"
            result = subprocess.run(["bash", "-c", script], cwd=workdir, capture_output=True, text=True,
                                    check=False, timeout=TIMEOUT_S, env={**os.environ, "LC_ALL": "C.UTF-8"})
            if result.returncode != 0:
                raise RuntimeError(f"{example.where(doc)}: exit {result.returncode}\n{result.stderr}")
            try:
                answered.append((example, render(example, result.stdout)))
            except ValueError as exc:
                raise ValueError(f"{example.where(doc)}: {exc}") from None
        stray = sorted({p.name for p in workdir.iterdir()} - before)
        if stray:
            raise RuntimeError(f"{doc.name}: examples wrote {stray} outside docs/; write under docs/images/")
        files = _written(workdir)
    return Outcome(answered, files, _filled(text, answered))


def _written(workdir: Path) -> dict[str, bytes]:
    """Files under the scratch docs/ that differ from the checkout's (images: a few KiB each)."""
    changed = {}
    for path in sorted((workdir / "docs").rglob("*")):
        relative = path.relative_to(workdir)
        original = ROOT / relative
        if path.is_file() and not (original.is_file() and filecmp.cmp(path, original, shallow=False)):
            changed[str(relative)] = path.read_bytes()
    return changed


def _filled(text: str, answered: list[tuple[Example, str]]) -> str:
    lines = text.split("\n")
    for example, answer in sorted(answered, key=lambda pair: -pair[0].command.start):
        if example.answer is not None:  # from the bottom up: line numbers above stay valid
            lines[example.answer.start + 1:example.answer.end] = answer.split("\n") if answer else []
    return "\n".join(lines)


def problems(doc: Path, outcome: Outcome) -> list[str]:
    """Where the doc differs from the server: a diff per example, a line per file."""
    found = []
    for example, served in outcome.examples:
        if example.checked and not same_answer(example.answer.body, served):
            diff = difflib.unified_diff(example.answer.body.split("\n"), served.split("\n"),
                                        "in the doc", "served now", lineterm="", n=1)
            command = example.command.body.strip().split("\n")[0]
            found.append(f"{example.where(doc)}: {command}\n" + "\n".join(diff))
    for relative in outcome.files:
        found.append(f"{relative}: the file that `{doc.name}`'s examples write differs from the committed one")
    return found


def same_answer(written: str, served: str) -> bool:
    """The same text, but for decimal numbers within float32's differences between CPUs."""
    if written == served:
        return True
    if DECIMAL.split(written) != DECIMAL.split(served):
        return False
    return all(math.isclose(float(a), float(b), rel_tol=REL_TOL, abs_tol=ABS_TOL)
               for a, b in zip(DECIMAL.findall(written), DECIMAL.findall(served), strict=True))


def write(doc: Path, outcome: Outcome) -> list[str]:
    """Write the answers and files in; returns what changed."""
    changed = [f"{example.where(doc)}: answer" for example, served in outcome.examples
               if example.answer is not None and example.answer.body != served]
    if outcome.text != doc.read_text():
        doc.write_text(outcome.text)
    for relative, content in outcome.files.items():
        (ROOT / relative).parent.mkdir(parents=True, exist_ok=True)
        (ROOT / relative).write_bytes(content)
        changed.append(relative)
    return changed


@contextlib.contextmanager
def serve(repository: Path) -> Iterator[str]:
    """`python -m service` on `repository` on a free loopback port, with default settings."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELSERVE_")}  # defaults only
    with tempfile.TemporaryFile() as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "service", "--model-repository", str(repository),
             "--host", "127.0.0.1", "--port", str(port)],
            cwd=ROOT, env={**env, "MODELSERVE_LOG_LEVEL": "warning"}, stdout=log, stderr=subprocess.STDOUT)
        try:
            url = f"http://127.0.0.1:{port}"
            _wait_ready(url, server, log)
            yield url
        finally:
            server.terminate()
            server.wait(timeout=30)


def _wait_ready(url: str, server: subprocess.Popen, log, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            log.seek(0)
            output = log.read().decode(errors="replace")
            raise RuntimeError(f"the server exited with {server.returncode}:\n{output}")
        with contextlib.suppress(OSError), urllib.request.urlopen(f"{url}/v2/health/ready", timeout=1) as answer:
            if answer.status == 200:
                return
        time.sleep(0.2)
    raise TimeoutError(f"{url} not ready after {timeout:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("docs", nargs="*", type=Path, default=[DOC], help="markdown files (docs/TASKS.md)")
    parser.add_argument("--check", action="store_true", help="compare only; exit 1 where they differ")
    parser.add_argument("--url", help="a running server (default: start one on --model-repository)")
    parser.add_argument("--model-repository", type=Path, default=ROOT / "models")
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        url = args.url or stack.enter_context(serve(args.model_repository))
        failed = False
        for doc in args.docs:
            outcome = run(doc.resolve(), url)
            if args.check:
                found = problems(doc, outcome)
                print("\n\n".join(found) or f"{doc}: {len(outcome.examples)} examples, as served")
                failed = failed or bool(found)
            else:
                changed = write(doc.resolve(), outcome)
                print(f"{doc}: {len(outcome.examples)} examples, {len(changed)} changed")
                print("".join(f"  {line}\n" for line in changed), end="")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
