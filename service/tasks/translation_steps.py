"""In-flight batching of greedy and sampled translations: one decoder call per step for them all.

A Stepper holds the running sequences of one model version as rows of numpy arrays (the last
token, the position, the source's context, the source, and the key/value cache or the padded
prefix) and runs one loop: each step is ONE call of the decoder graph over every row, a
vectorised choice of the next tokens (log-softmax and argmax over all rows; only sampled rows
draw one by one, each from its own seeded generator), and one hand-over per sequence. A new
sequence joins at the next step; a finished, stopped or abandoned one leaves before it. The
per-step cost of the bookkeeping is a few numpy operations over all rows, not a future, a
padded prefix and a batcher round trip per sequence.

With a cached graph (decoder_cached.onnx: token, position, cross, source, past -> logits,
attention, present; the context is cross_kv.onnx's cross-attention keys and values, computed
once per sequence) a step feeds each row's newest token and its cache; without one, the
full-prefix graph gets the encoder's memory as context and the stepper's own (rows, P) prefix
array, written in place. Either way
rows at different positions share a call: the graphs mask what lies after each row's position,
so every row's result is what it would be alone.
"""

import asyncio
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from service.sampling import decoding
from service.tasks import positional
from service.tasks.base import GraphRunner


@dataclass
class Step:
    """What one step gave one sequence."""

    token: int
    attention: np.ndarray  # (S,) the cross-attention row of this step
    logp: float
    finish_reason: str | None  # stop (EOS chosen: `token` is EOS), length, or None: more to come


@dataclass
class Sequence:
    """One running sequence: the stepper appends its Steps; its stream awaits them."""

    context: np.ndarray  # (1, S, D) the encoder's memory, or (1, L, 2, S, D) cross keys/values
    source: np.ndarray  # (1, S)
    max_tokens: int
    temperature: float
    top_k: int
    top_p: float
    seed: int
    left: bool = False  # its stream ended or stopped: it leaves before the next step
    _steps: deque = field(default_factory=deque)
    _waiter: asyncio.Future | None = None
    _error: BaseException | None = None
    _rng: np.random.Generator | None = None

    async def next(self) -> Step:
        while not self._steps:
            if self._error is not None:
                raise self._error
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
        return self._steps.popleft()

    def _push(self, step: Step | None, error: BaseException | None = None) -> None:
        if step is not None:
            self._steps.append(step)
        self._error = error
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)


class Stepper:
    def __init__(self, decoder: GraphRunner, cached: bool, bos: int, eos: int, pad: int, positions: int):
        self.decoder, self.cached = decoder, cached
        self.bos, self.eos, self.pad, self.positions = bos, eos, pad, positions
        self._joining: list[Sequence] = []
        self._task: asyncio.Task | None = None
        self._rows: list[Sequence] = []
        past = decoder.inputs[4].shape if cached else None
        self._past_shape = tuple(past[1:]) if past is not None else None  # (L, 2, P, D)
        self._arrays: dict[str, np.ndarray] = {}

    def add(self, seq: Sequence) -> Sequence:
        """Join `seq` at the next step (the loop starts if it is not running)."""
        self._joining.append(seq)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._loop())
        return seq

    @property
    def running(self) -> int:
        return len(self._rows) + len(self._joining)

    async def _loop(self) -> None:
        while True:
            self._admit()
            if not self._rows:
                return
            a = self._arrays
            try:
                if self.cached:
                    logits, attention, a["past"] = (await positional.run(
                        self.decoder, a["token"], a["position"], a["context"], a["source"], a["past"]))[:3]
                else:
                    logits, attention = (await positional.run(
                        self.decoder, a["prefix"], a["position"], a["context"], a["source"]))[:2]
                self._choose(logits, attention)
            except BaseException as exc:  # every sequence of the call learns it; the loop ends
                for seq in [*self._rows, *self._joining]:
                    seq._push(None, exc if isinstance(exc, Exception) else RuntimeError("decoding stopped"))
                self._rows, self._joining, self._arrays = [], [], {}
                if not isinstance(exc, Exception):
                    raise
                return

    def _admit(self) -> None:
        """Drop the rows whose streams left; append the sequences that joined."""
        keep = [i for i, seq in enumerate(self._rows) if not seq.left]
        if len(keep) < len(self._rows):
            self._rows = [self._rows[i] for i in keep]
            self._arrays = {k: v[keep] for k, v in self._arrays.items()}
        joining = [s for s in self._joining if not s.left]
        self._joining = []
        if not joining:
            return
        n = len(joining)
        new = {
            "token": np.full(n, self.bos, dtype=np.int64),
            "position": np.zeros(n, dtype=np.int64),
            "context": np.concatenate([s.context for s in joining]),
            "source": np.concatenate([s.source for s in joining]),
            "steps": np.zeros(n, dtype=np.int64),
            "max_tokens": np.array([s.max_tokens for s in joining], dtype=np.int64),
            "greedy": np.array([s.temperature == 0 for s in joining]),
        }
        if self.cached:
            new["past"] = np.zeros((n, *self._past_shape), dtype=np.float32)
        else:
            new["prefix"] = np.full((n, self.positions), self.pad, dtype=np.int64)
            new["prefix"][:, 0] = self.bos
        for seq in joining:
            seq._rng = np.random.Generator(np.random.PCG64(seq.seed))
        if self._arrays:
            self._arrays = {k: np.concatenate([self._arrays[k], new[k]]) for k in new}
        else:
            self._arrays = new
        self._rows += joining

    def _choose(self, logits: np.ndarray, attention: np.ndarray) -> None:
        """The next token of every row at once; sampled rows draw from their own generators."""
        a = self._arrays
        logp = decoding.log_softmax(logits)  # (R, V) float64, as decode() computes it
        chosen = logp.argmax(axis=-1)  # ties to the lowest index, as decode()
        for i in np.flatnonzero(~a["greedy"]):
            seq = self._rows[i]
            chosen[i] = decoding.sample_token(logp[i], seq._rng, seq.temperature, seq.top_k, seq.top_p)
        picked = logp[np.arange(len(chosen)), chosen]
        a["steps"] += 1
        stopped = chosen == self.eos
        done = stopped | (a["steps"] >= a["max_tokens"])
        attention = np.asarray(attention, dtype=np.float32)
        for i, seq in enumerate(self._rows):
            reason = None
            if done[i]:
                reason = decoding.FINISH_STOP if stopped[i] else decoding.FINISH_LENGTH
                seq.left = True
            seq._push(Step(int(chosen[i]), attention[i], float(picked[i]), reason))
        a["position"] += 1  # the chosen token sits at the next position
        a["token"] = chosen
        if not self.cached:
            rows = np.flatnonzero(~done)
            a["prefix"][rows, a["position"][rows]] = chosen[rows]
