"""The dynamic batcher: one per graph. Concurrent requests share one execution.

A request waits in a queue; a collector takes as many compatible requests as fit in
`max_batch_size` rows (waiting at most `max_queue_delay` for more), runs them as one batch in a
worker thread (on the event loop when the runner measured its runs to take microseconds), and
hands each requester exactly its own rows. While every worker is busy the
queue fills, so batches grow with load even with no delay at all.
"""

import asyncio
import functools
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass

import numpy as np

from service import metrics
from service.errors import Overloaded, ServiceError
from service.stats import ModelStats
from service.tally import Tally

RunBatch = Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]


@dataclass
class BatchPolicy:
    max_batch_size: int
    max_queue_delay_s: float = 0.0
    preferred_batch_sizes: tuple[int, ...] = ()
    max_queue_size: int | None = None
    max_concurrent_batches: int = 1


class _Pending:
    """One queued request (a slotted class: a dataclass with a default factory cost more per request)."""

    __slots__ = ("feeds", "future", "key", "queued_at", "rows")

    def __init__(self, feeds: dict[str, np.ndarray], rows: int, key: tuple, future: asyncio.Future):
        self.feeds, self.rows, self.key, self.future = feeds, rows, key, future
        self.queued_at = time.perf_counter()


class Batcher:
    """Queue and collect loop for one graph; `submit` is the only door."""

    def __init__(
        self,
        run_batch: RunBatch,
        executor: Executor,
        policy: BatchPolicy,
        labels: tuple[str, str],
        stats: ModelStats,
        inline: Callable[[], bool] = lambda: False,
        run_on_loop: RunBatch | None = None,
    ):
        self._run_batch = run_batch
        self._run_on_loop = run_on_loop or run_batch  # what runs a batch on the event loop
        self._inline = inline
        self._stats = stats
        self._closing = False
        self._executor = executor
        self.policy = policy
        self._queue: deque[_Pending] = deque()
        self._arrived = asyncio.Event()
        self._slots = asyncio.Semaphore(policy.max_concurrent_batches)
        self._collector: asyncio.Task | None = None
        self._pending_gauge = metrics.PENDING_REQUESTS.labels(*labels)
        self._queue_time = Tally(metrics.QUEUE_DURATION.labels(*labels))
        # The pending gauge's change and the queue statistics since the last flush: added once
        # per event-loop turn (_flush_counts), not per request or batch (each a locked update;
        # 64 connections of 64-row requests make 64 batches in one turn). The flush runs before
        # the loop reads any later I/O, so a scrape or a stats call sees every request before it.
        self._pending_delta = 0
        self._dequeued = 0
        self._waited = 0.0
        self._flush_loop: asyncio.AbstractEventLoop | None = None
        self._largest_preferred = max(
            (s for s in policy.preferred_batch_sizes if s <= policy.max_batch_size), default=policy.max_batch_size
        )

    def submit(self, feeds: dict[str, np.ndarray]) -> "asyncio.Future[dict[str, np.ndarray]]":
        """Queue one request (its first axis is its rows); the future gives its own outputs. A
        plain function returning the future, not a coroutine: one frame less to make and to
        resume per request. Await it at once: an error of the request itself (a full queue) is
        raised by the call."""
        if self.policy.max_queue_size is not None and len(self._queue) >= self.policy.max_queue_size:
            raise Overloaded(f"queue is full ({self.policy.max_queue_size} requests waiting); retry shortly")
        loop = asyncio.get_running_loop()
        # The dtype itself, not its `.str` (a new string each time): equal dtypes compare and hash
        # alike. The key of one input is not wrapped in a tuple: it equals no key of several.
        if len(feeds) == 1:
            for name, array in feeds.items():
                shape = array.shape
                key = (name, array.dtype, shape[1:])
        else:
            shape = next(iter(feeds.values())).shape
            key = tuple([(name, a.dtype, a.shape[1:]) for name, a in feeds.items()])
        pending = _Pending(feeds, int(shape[0]), key, loop.create_future())
        self._queue.append(pending)
        self._pending_delta += 1
        self._flush_later(loop)
        self._arrived.set()
        # Started lazily, and again after a close: a request that picked this version just
        # before it was replaced is still served by it.
        if self._collector is None or self._collector.done():
            self._collector = loop.create_task(self._collect_forever())
        return pending.future

    def close(self) -> None:
        """Serve what is queued, then let the collector end (an unloaded or replaced version)."""
        self._closing = True
        self._arrived.set()

    async def _collect_forever(self) -> None:
        while True:
            await self._slots.acquire()
            try:
                batch = await self._collect()
            except BaseException:
                self._slots.release()
                raise
            if batch is None:
                self._slots.release()
                return
            if batch:
                self._dispatch(batch, release_slot=True)
            else:
                self._slots.release()

    async def _collect(self) -> list[_Pending] | None:
        """Wait for a first request, then gather what fits, up to the delay; None once closed."""
        while not self._queue:
            if self._closing:
                return None
            self._arrived.clear()
            await self._arrived.wait()
        batch = [self._queue.popleft()]
        rows, key = batch[0].rows, batch[0].key
        deadline = time.perf_counter() + self.policy.max_queue_delay_s
        counted = 0  # requests of `batch` the pending gauge has already let go (one dec per batch)
        while rows < self._largest_preferred:
            candidate = self._next_compatible(key)
            if candidate is None:
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    break
                self._pending_delta -= len(batch) - counted  # right while this waits
                counted = len(batch)
                self._flush_later(asyncio.get_running_loop())
                self._arrived.clear()
                try:
                    await asyncio.wait_for(self._arrived.wait(), remaining)
                except TimeoutError:
                    break
                continue
            if rows + candidate.rows > self.policy.max_batch_size:
                break  # it opens the next batch instead; a request is never cut in two
            self._queue.remove(candidate)
            batch.append(candidate)
            rows += candidate.rows
        self._pending_delta -= len(batch) - counted
        self._flush_later(asyncio.get_running_loop())
        return [p for p in batch if not p.future.done()]  # skip requesters that gave up

    def _flush_later(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._flush_loop is None:
            self._flush_loop = loop
            loop.call_soon(self._flush_counts)
        elif self._flush_loop.is_closed():  # its flush never ran
            self._flush_counts()
            self._flush_later(loop)

    def _flush_counts(self) -> None:
        self._flush_loop = None
        if self._pending_delta:
            self._pending_gauge.inc(self._pending_delta)
            self._pending_delta = 0
        if self._dequeued:
            self._queue_time.flush()
            self._stats.queued(self._waited, self._dequeued)
            self._dequeued, self._waited = 0, 0.0

    def _next_compatible(self, key: tuple) -> _Pending | None:
        for candidate in self._queue:
            if candidate.key == key:
                return candidate
        return None

    def _dispatch(self, batch: list[_Pending], release_slot: bool) -> None:
        """Run a batch in a worker thread; its completion splits the outputs (no task per batch:
        at one denoiser call per diffusion step, every event-loop hop counts)."""
        now = time.perf_counter()
        waited = 0.0
        queue_time = self._queue_time
        for pending in batch:
            queue_time.observe(now - pending.queued_at)
            waited += now - pending.queued_at
        self._waited += waited
        self._dequeued += len(batch)
        loop = asyncio.get_running_loop()
        self._flush_later(loop)
        if len(batch) == 1:
            feeds = batch[0].feeds
        else:
            feeds = {name: np.concatenate([p.feeds[name] for p in batch]) for name in batch[0].feeds}
        if self._inline():
            future = loop.create_future()
            try:
                future.set_result(self._run_on_loop(feeds))
            except Exception as exc:  # noqa: BLE001  (handed to the requesters, as from a thread)
                future.set_exception(exc)
            self._finish(batch, release_slot, future)
            return
        future = loop.run_in_executor(self._executor, self._run_batch, feeds)
        future.add_done_callback(functools.partial(self._finish, batch, release_slot))

    def _finish(self, batch: list[_Pending], release_slot: bool, future: asyncio.Future) -> None:
        if release_slot:
            self._slots.release()
        if future.cancelled():
            _fail(batch, asyncio.CancelledError())
            return
        exc = future.exception()
        if exc is None:
            _split(batch, future.result())
        elif isinstance(exc, ServiceError) and len(batch) > 1:
            # One request's values broke the batch: run each alone, so only the requester
            # that caused it sees the error.
            for pending in batch:
                self._dispatch([pending], release_slot=False)
        else:  # that request's own fault, or one of ours: every requester of the batch learns it
            _fail(batch, exc)


def _split(batch: list[_Pending], outputs: dict[str, np.ndarray]) -> None:
    if len(batch) == 1:
        _resolve(batch[0], outputs)
        return
    offset = 0
    for pending in batch:
        _resolve(pending, {name: out[offset : offset + pending.rows] for name, out in outputs.items()})
        offset += pending.rows


def _resolve(pending: _Pending, outputs: dict[str, np.ndarray]) -> None:
    if not pending.future.done():
        pending.future.set_result(outputs)


def _fail(batch: list[_Pending], exc: BaseException) -> None:
    for pending in batch:
        if not pending.future.done():
            pending.future.set_exception(exc)
