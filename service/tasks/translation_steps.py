"""In-flight batching of greedy and sampled translations: one decoder call per step for them all.

A Stepper holds the running sequences of one model version as rows of numpy arrays (the last
token, the position, the source, the source's context, and the key/value cache or the padded
prefix: `_Rows`, arrays with room to grow, so a row that joins is written in place and one that
leaves is replaced by the last row, never a copy of every row) and runs one loop: each step is ONE call of the decoder graph over every row, a
vectorised choice of the next tokens (log-softmax and argmax over all rows; only sampled rows
draw one by one, each from its own seeded generator), and one hand-over per sequence: a call of
its sink (translation.TextSequence.take), which turns the step into events and queues them for
a reader or writes them to its client at once; the step observes its tokens' latencies too,
all at once (one inter-token latency for every row that was in the last step). A finished,
stopped or abandoned sequence leaves before the next step. The per-step cost of the bookkeeping
is a few numpy operations over all rows, not a future, a padded prefix and a batcher round trip
per sequence.

New sequences are admitted first at each step boundary: the context graph (cross_kv.onnx, or
the encoder without a cache) runs ONCE for every sequence that arrived during the last step,
and they take part in that same step's decoder call. So a new request waits for at most the
step in progress, not behind a queue of other graph calls, and its first token comes out of
the next step. The stepper gathers its own batches and calls its graphs past their batchers
(`execute`), cut at the decoder's max_batch_size.

With a cached graph (decoder_cached.onnx: token, position, source, the context arrays, the past
arrays -> logits, attention, one new array per past one; the context is cross_kv.onnx's
cross-attention keys and values, computed once per sequence) a step feeds each row's newest
token and its cache, and writes the step's new keys and values into slot `position` of the
past arrays, in place (training/translation_cache.py has the graphs' layout); without one, the
full-prefix graph gets the encoder's memory as context and the stepper's own (rows, P) prefix
array, written in place. Either way
rows at different positions share a call: the graphs mask what lies after each row's position,
so every row's result is what it would be alone.
"""

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from service.sampling import decoding
from service.tally import Tally
from service.tasks import positional
from service.tasks.base import GraphRunner

log = logging.getLogger(__name__)

# Event-loop turns at each step boundary: one for the streams' writes, one for the sockets'
# reads (a request's task is created), one for those tasks to plan their sequences and join.
_SETTLE_TURNS = 3


@dataclass(slots=True)
class Step:
    """What one step gave one sequence."""

    token: int
    attention: np.ndarray | None  # (S,) the cross-attention row of this step; None if unread
    finish_reason: str | None  # stop (EOS chosen: `token` is EOS), length, or None: more to come


class Sequence:
    """One running sequence: the stepper hands each of its Steps to `sink` as it is chosen.

    `sink(step, None)` runs on the event loop inside the stepper's step, once per step of this
    sequence; `sink(None, error)` once if the decoder fails. It must not block or await: it
    keeps, writes or queues what it is given. A sink that raises makes its sequence leave (and
    is logged); the other sequences of the batch go on."""

    __slots__ = ("_rng", "arrived", "attention", "left", "max_tokens", "seed", "sink", "source", "temperature",
                 "top_k", "top_p")

    def __init__(self, source: list[int], max_tokens: int, temperature: float, top_k: int, top_p: float,
                 seed: int, sink: Callable[[Step | None, BaseException | None], None], arrived: float,
                 attention: bool = True):
        self.source = source  # its S source ids, padded: the joining rows' array is made once per step
        self.attention = attention  # whether its sink reads each Step's attention row (else None)
        self.arrived = arrived  # time.perf_counter() when its request came: its first token's latency
        self.max_tokens, self.temperature, self.top_k, self.top_p, self.seed = (
            max_tokens, temperature, top_k, top_p, seed)
        self.sink = sink
        self.left = False  # its stream ended or stopped: it leaves before the next step
        self._rng: np.random.Generator | None = None

    def _fail(self, error: BaseException) -> None:
        """The decoder failed: the sink learns it (its steps are handed over by Stepper._choose)."""
        try:
            self.sink(None, error)
        except Exception:  # noqa: BLE001  (logged there; the sequence leaves)
            self._sink_failed()

    def _sink_failed(self) -> None:
        log.exception("a sequence's consumer failed; the sequence leaves its batch")
        self.left = True


class _Rows:
    """Groups of per-row arrays, each (members, room, ...), whose first `n` rows are the running
    sequences', with room for more: a joining row is written after them, a leaving row is
    overwritten by the last one. Arrays of one kind share a group (the token, position, step
    count and limit; every layer's past keys and values...), so a row leaves in one copy per
    group, and each member's first `n` rows are still one contiguous array for the graph."""

    def __init__(self):
        self.n = 0
        self.groups: dict[str, np.ndarray] = {}

    def __getitem__(self, group: str) -> np.ndarray:
        return self.groups[group][:, : self.n]

    def append(self, new: dict[str, np.ndarray | list[np.ndarray]], count: int) -> None:
        """new: each group's arrays for the `count` joining rows, (members, count, ...), or a
        list of its members (count, ...), written in place without stacking them first."""
        end = self.n + count
        room = next(iter(self.groups.values())).shape[1] if self.groups else 0
        if end > room:  # grow: twice the room, at least 16 rows
            room = max(end, 2 * room, 16)
            for name, x in new.items():
                members, first = (len(x), x[0]) if isinstance(x, list) else (x.shape[0], x[0])
                grown = np.zeros((members, room, *first.shape[1:]), dtype=first.dtype)
                if name in self.groups:
                    grown[:, : self.n] = self.groups[name][:, : self.n]
                self.groups[name] = grown
        for name, x in new.items():
            if isinstance(x, list):
                for member, rows in zip(self.groups[name], x, strict=True):
                    member[self.n : end] = rows
            else:
                self.groups[name][:, self.n : end] = x
        self.n = end

    def remove(self, gone: list[int]) -> list[tuple[int, int]]:
        """Drop the rows `gone` (ascending): the live rows past the new end move into the holes
        before it. Returns the (to, from) moves, for the caller's own list of rows."""
        end = self.n - len(gone)
        holes = [i for i in gone if i < end]
        movers = []
        if holes:
            left = set(gone)
            movers = [j for j in range(end, self.n) if j not in left]
            for array in self.groups.values():
                # A plain copy per row: the few rows that leave a step cost less so than one
                # gather and scatter through index arrays.
                for to, from_ in zip(holes, movers, strict=True):
                    array[:, to] = array[:, from_]
        self.n = end
        return list(zip(holes, movers, strict=True))

    def clear(self) -> None:
        self.n = 0


def _packed(cross_kv: GraphRunner) -> bool:
    """Whether the context graph gives its arrays packed in one output (B, C, H, S, dk)."""
    return len(cross_kv.outputs) == 1 and len(cross_kv.outputs[0].shape) == 5


def context_count(cross_kv: GraphRunner) -> int | None:
    """How many of decoder_cached's inputs cross_kv gives: one per output, or, when its one
    output is packed (B, C, H, S, dk), C of them; None if C is not fixed."""
    if _packed(cross_kv):
        count = cross_kv.outputs[0].shape[1]
        return count if count > 0 else None
    return len(cross_kv.outputs)


class Stepper:
    def __init__(self, decoder: GraphRunner, context: GraphRunner, cached: bool, bos: int, eos: int,
                 pad: int, positions: int, latencies: tuple[Tally, Tally]):
        """latencies: where each token's latency goes (time to first token, inter-token)."""
        self.decoder, self.context, self.cached = decoder, context, cached
        self.bos, self.eos, self.pad, self.positions = bos, eos, pad, positions
        self._latencies = latencies
        self._last_step = 0.0  # when the last step chose its tokens
        batcher = decoder.batcher  # its policy bounds the rows of one call; none: no bound
        self._max_rows = batcher.policy.max_batch_size if batcher is not None else None
        # The policy's max_queue_delay, as the batcher applied it to each step before the
        # stepper called past it: how long a step that has room waits for more to join it.
        self._delay = batcher.policy.max_queue_delay_s if batcher is not None else 0.0
        self._joining: list[Sequence] = []
        self._task: asyncio.Task | None = None
        self._rows: list[Sequence] = []
        self._state = _Rows()
        # The graph's inputs after token, position and source: the context arrays (as many as
        # the context graph gives: an output each, or the C arrays of one packed output
        # (B, C, H, S, dk)), then, with a cache, the past arrays (B, H, P, dk), each paired with
        # the new output (B, H, dk) at the same place after logits and attention.
        self._packed = cached and _packed(context)
        self._contexts = context_count(context) if cached else 1
        state = decoder.inputs[3 + self._contexts:] if cached else []
        self._past_shape = (len(state), *state[0].shape[1:]) if state else None  # (M, H, P, dk)
        if any(tuple(s.shape[1:]) != self._past_shape[1:] for s in state):
            raise ValueError("the cached decoder's past inputs must all have one shape")

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
        try:
            while await self._step():
                pass
        except BaseException as exc:  # every running sequence learns it; the loop ends
            for seq in [*self._rows, *self._joining]:
                seq._fail(exc if isinstance(exc, Exception) else RuntimeError("decoding stopped"))
            self._rows, self._joining = [], []
            self._state.clear()
            if not isinstance(exc, Exception):
                raise

    async def _step(self) -> bool:
        """Admit the sequences that arrived, then one decoder call for every row; False once
        there is none left."""
        if self._delay and self.running < self._max_rows:
            await asyncio.sleep(self._delay)
        # Let the loop run before admitting: the streams write the last step's tokens, and the
        # requests that arrive meanwhile (a closed-loop client sends its next one as soon as
        # its stream ends) are read and planned, and join the step about to start instead of
        # waiting a whole step for the next (TTFT at 16 concurrent halved, docs/BENCHMARKS.md).
        for _ in range(_SETTLE_TURNS):
            await asyncio.sleep(0)
        self._drop_left()
        joining = [s for s in self._joining if not s.left]
        self._joining = []
        if joining:
            await self._admit(joining)
        if not self._rows:
            return bool(self._joining)  # some arrived while the context graph ran
        a = self._state
        token, position = a["ints"][:2]
        if self.cached:
            past = a["past"]
            logits, attention, *new = await self._call(
                self.decoder, token, position, a["source"][0], *a["context"], *past)
            rows = np.arange(a.n)
            for cache, written in zip(past, new, strict=True):  # into slot `position` of each row
                cache[rows, :, position] = written
        else:
            logits, attention = await self._call(self.decoder, a["prefix"][0], position, a["context"][0],
                                                 a["source"][0])
        self._choose(logits, attention)
        return True

    async def _call(self, graph: GraphRunner, *inputs: np.ndarray, then_yield: bool = True) -> list[np.ndarray]:
        """One execution of `graph` over all rows (a few, in order, when over max_batch_size)."""
        rows = len(inputs[0])
        if self._max_rows is None or rows <= self._max_rows:
            return await positional.execute(graph, *inputs, then_yield=then_yield)
        parts = [await positional.execute(graph, *(x[i : i + self._max_rows] for x in inputs), then_yield=then_yield)
                 for i in range(0, rows, self._max_rows)]
        return [np.concatenate(outputs) for outputs in zip(*parts)]

    def _drop_left(self) -> None:
        """Drop the rows whose streams left."""
        gone = [i for i, seq in enumerate(self._rows) if seq.left]
        if gone:
            rows = self._rows
            for to, from_ in self._state.remove(gone):
                rows[to] = rows[from_]
            del rows[self._state.n :]

    async def _admit(self, joining: list[Sequence]) -> None:
        """The context of every joining sequence in one call, then their rows appended; if that
        call fails, only they learn it."""
        n = len(joining)
        source = np.array([s.source for s in joining], dtype=np.int64)  # (n, S)
        try:
            # No loop turn after it: the step's decoder call follows at once and gives one.
            context = await self._call(self.context, source, then_yield=False)
        except BaseException as exc:
            for seq in joining:
                seq._fail(exc if isinstance(exc, Exception) else RuntimeError("decoding stopped"))
            if not isinstance(exc, Exception):
                raise
            return
        keep = [i for i, s in enumerate(joining) if not s.left]  # left during the call
        if len(keep) < n:
            joining, source, n = [joining[i] for i in keep], source[keep], len(keep)
            context = [c[keep] for c in context]
            if not n:
                return
        # The rows' context group is (members, rows, ...): a packed output's arrays are its
        # second axis (a view; append copies it), the others one list member each.
        members = context[0].swapaxes(0, 1) if self._packed else list(context)
        self._drop_left()  # rows that finished their streams during the call
        ints = np.zeros((4, n), dtype=np.int64)  # token, position, steps, max_tokens
        ints[0] = self.bos
        ints[3] = [s.max_tokens for s in joining]
        new = {"ints": ints, "source": source[None], "context": members,
               "greedy": np.array([[s.temperature == 0 for s in joining]])}
        if self.cached:  # zeros: no slot is read before its step writes it (the mask)
            new["past"] = np.zeros((self._past_shape[0], n, *self._past_shape[1:]), dtype=np.float32)
        else:
            new["prefix"] = np.full((1, n, self.positions), self.pad, dtype=np.int64)
            new["prefix"][0, :, 0] = self.bos
        for seq in joining:  # sampled rows only: seeding a generator costs 50 µs
            if seq.temperature > 0:
                seq._rng = np.random.Generator(np.random.PCG64(seq.seed))
        self._state.append(new, n)
        self._rows += joining

    def _choose(self, logits: np.ndarray, attention: np.ndarray) -> None:
        """The next token of every row at once; sampled rows draw from their own generators."""
        a = self._state
        token, position, steps, max_tokens = a["ints"]
        logp = decoding.log_softmax(logits)  # (R, V) float64, as decode() computes it
        chosen = logp.argmax(axis=-1)  # ties to the lowest index, as decode()
        greedy = a["greedy"][0]
        if not greedy.all():
            for i in np.flatnonzero(~greedy):
                seq = self._rows[i]
                chosen[i] = decoding.sample_token(logp[i], seq._rng, seq.temperature, seq.top_k, seq.top_p)
        steps += 1
        stopped = chosen == self.eos
        done = stopped | (steps >= max_tokens)
        attention = np.asarray(attention, dtype=np.float32)
        rows = self._rows
        first = np.flatnonzero(steps == 1)  # the rows that joined at this step
        self._observe_latencies(first, stopped)
        # The streams woken first write first: the sequences that joined at this step, so a new
        # request's first token does not wait behind every running stream's next one.
        # Python ints: every list and array below is indexed by them, once per row.
        order = range(len(rows)) if len(first) in (0, len(rows)) else first.tolist() + np.flatnonzero(steps > 1).tolist()
        tokens, ended, eos = chosen.tolist(), done.tolist(), stopped.tolist()
        for i in order:  # once per token: each sink called here, with no layer between
            seq = rows[i]
            reason = None
            if ended[i]:
                reason = decoding.FINISH_STOP if eos[i] else decoding.FINISH_LENGTH
            if not seq.left:  # else it left during this step: nobody takes its token
                try:
                    seq.sink(Step(tokens[i], attention[i] if seq.attention else None, reason), None)
                except Exception:  # noqa: BLE001  (logged there; only this sequence leaves)
                    seq._sink_failed()
            if reason is not None:
                seq.left = True
        position += 1  # the chosen token sits at the next position
        token[:] = chosen
        if not self.cached:
            going = np.flatnonzero(~done)
            a["prefix"][0, going, position[going]] = chosen[going]

    def _observe_latencies(self, first: np.ndarray, stopped: np.ndarray) -> None:
        """Each token's latency, as one step observes them all: a row's first token since its
        request came, and every other row's since the last step, which chose its previous token
        (every running row takes part in every step). EOS is not a token."""
        now = time.perf_counter()
        ttft, itl = self._latencies
        firsts = first[~stopped[first]]
        for i in firsts:
            ttft.observe(now - self._rows[i].arrived)
        later = len(stopped) - int(np.count_nonzero(stopped)) - len(firsts)
        if later:
            itl.observe(now - self._last_step, later)
        self._last_step = now
