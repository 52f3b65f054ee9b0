"""Execution of one graph: its session in a worker thread (or on the event loop when it takes
microseconds), its batcher, its metrics and statistics. Tasks call `run`; nothing above the
tasks touches a runner."""

import asyncio
import time
from concurrent.futures import Executor

import numpy as np

from service import metrics
from service.batching import Batcher, BatchPolicy
from service.runtime import Graph, TensorSpec
from service.stats import ModelStats
from service.tally import Tally

# A run measured below this goes on the event loop: the hop to a worker thread and back costs
# more than that (measured on one core, bench/profile_infer.py: the submit, the wake-up and the
# wait for the GIL, which the loop holds for up to 5 ms while the finished worker waits),
# and it blocks the loop for no longer than parsing a large request would.
INLINE_BELOW_S = 0.0005
_SMOOTHING = 0.2  # weight of the newest timed run in the moving average of run times
_TIMED_EVERY = 8  # runs per CPU-timed run

class GraphRunner:
    """Runs one graph in a worker thread, or inline once its runs are measured to take less
    than INLINE_BELOW_S, and records its metrics.

    With a batch policy, and a graph whose every input and output has a dynamic first axis,
    concurrent calls go through a dynamic batcher and share executions.
    """

    def __init__(
        self,
        graph: Graph,
        executor: Executor,
        labels: tuple[str, str],
        policy: BatchPolicy | None = None,
        stats: ModelStats | None = None,
    ):
        self._graph = graph
        self._executor = executor
        # Unknown until measured: the first runs (ORT's warm-up among them) go to a thread.
        self._recent_s = 4 * INLINE_BELOW_S
        self._runs = 0
        # Measured in CPU time of the running thread, so a busy machine's preemptions don't
        # count; only where the CPU does the work (a GPU's run waits with its CPU idle).
        self._may_inline = graph.provider == "CPUExecutionProvider"
        self.stats = stats or ModelStats()  # shared by the graphs of one model version
        batchable = all(s.has_batch_axis for s in (*graph.inputs, *graph.outputs))
        self.batcher = (
            Batcher(self.run_sync, executor, policy, labels, self.stats, inline=self.runs_inline,
                    run_on_loop=self.run_on_loop)
            if policy is not None and policy.max_batch_size > 0 and batchable
            else None
        )
        self._exec_count = metrics.EXEC_COUNT.labels(*labels)
        self._compute = metrics.COMPUTE_DURATION.labels(*labels)
        self._batch_size = metrics.BATCH_SIZE.labels(*labels)
        # Runs made on the event loop, recorded once per loop turn (_flush_loop_runs).
        self._loop_compute = Tally(self._compute)
        self._loop_batch_size = Tally(self._batch_size)
        self._loop_runs: list[tuple[int, float]] = []
        self._flush_loop: asyncio.AbstractEventLoop | None = None

    # The graph's signature and where it runs, so callers never reach through to the session.
    @property
    def inputs(self) -> list[TensorSpec]:
        return self._graph.inputs

    @property
    def outputs(self) -> list[TensorSpec]:
        return self._graph.outputs

    @property
    def provider(self) -> str:
        return self._graph.provider

    @property
    def file_name(self) -> str:
        return self._graph.path.name

    async def run(self, feeds: dict[str, np.ndarray], output_names: list[str] | None = None) -> dict[str, np.ndarray]:
        if self.batcher is not None:
            outputs = await self.batcher.submit(feeds)
            return {n: outputs[n] for n in output_names} if output_names else outputs
        if self.runs_inline():
            outputs = self.run_on_loop(feeds, output_names)
            await _let_others_run()
            return outputs
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self.run_sync, feeds, output_names)

    async def execute(self, feeds: dict[str, np.ndarray], then_yield: bool = True) -> dict[str, np.ndarray]:
        """Run now, past the batcher: for a caller that gathers its own batch (the diffusion
        stepper stacks every generation's step), so no queue delay applies. then_yield=False:
        an inline run does not give the loop a turn after it, for a caller whose next await
        does (a run followed at once by another)."""
        if self.runs_inline():
            outputs = self.run_on_loop(feeds)
            if then_yield:
                await _let_others_run()
            return outputs
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self.run_sync, feeds)

    def runs_inline(self) -> bool:
        """Whether the next run goes on the event loop: its recent runs were that short. Inline
        runs are measured too, so a graph whose runs grow goes back to the threads."""
        return self._may_inline and self._recent_s < INLINE_BELOW_S

    def close(self) -> None:
        """Stop batching once the requests already queued are served."""
        if self.batcher is not None:
            self.batcher.close()

    def run_sync(self, feeds: dict[str, np.ndarray], output_names: list[str] | None = None) -> dict[str, np.ndarray]:
        """One run, recorded at once: from a worker thread (or any caller off the event loop)."""
        outputs, rows, elapsed = self._execute(feeds, output_names)
        self._compute.observe(elapsed)
        self._exec_count.inc()
        self._batch_size.observe(rows)
        self.stats.executed(rows, elapsed)
        return outputs

    def run_on_loop(self, feeds: dict[str, np.ndarray], output_names: list[str] | None = None) -> dict[str, np.ndarray]:
        """One run on the event loop's thread, recorded once per loop turn with the turn's other
        runs: four locked metric updates a run were a measurable share of a 64-row request's
        CPU (bench/inprocess.py). As with the request metrics (service.dataplane._Successes),
        the flush runs before the loop reads any later I/O, so a scrape after a response counts
        that response's run."""
        outputs, rows, elapsed = self._execute(feeds, output_names)
        self._loop_compute.observe(elapsed)
        self._loop_batch_size.observe(rows)
        self._loop_runs.append((rows, elapsed))
        loop = self._flush_loop
        if loop is None or loop.is_closed():  # a closed loop's flush never ran: record its runs now
            if loop is not None:
                self._flush_loop_runs()
            self._flush_loop = asyncio.get_running_loop()
            self._flush_loop.call_soon(self._flush_loop_runs)
        return outputs

    def _flush_loop_runs(self) -> None:
        self._flush_loop = None
        runs, self._loop_runs = self._loop_runs, []
        if runs:
            self._exec_count.inc(len(runs))
            self._loop_compute.flush()
            self._loop_batch_size.flush()
            self.stats.executed_runs(runs)

    def _execute(self, feeds: dict[str, np.ndarray], output_names: list[str] | None) -> tuple[dict, int, float]:
        # The thread's CPU clock is a system call that, read right after a run on a busy machine,
        # was measured at 1-15 µs: it is read around the first runs (to settle where they go)
        # and then one run in _TIMED_EVERY, plenty for a moving average of run times.
        self._runs += 1
        if self._runs <= _TIMED_EVERY or self._runs % _TIMED_EVERY == 0:
            cpu_started = time.thread_time()
            started = time.perf_counter()
            outputs = self._graph.run(feeds, output_names)
            elapsed = time.perf_counter() - started
            self._recent_s += _SMOOTHING * (time.thread_time() - cpu_started - self._recent_s)
        else:
            started = time.perf_counter()
            outputs = self._graph.run(feeds, output_names)
            elapsed = time.perf_counter() - started
        return outputs, _rows(feeds), elapsed


async def _let_others_run() -> None:
    """An inline run never suspends its caller, so a loop of them (a sampler's steps) would hold
    the event loop to its end: no other request, and no client disconnect, seen until then."""
    await asyncio.sleep(0)


def _rows(feeds: dict[str, np.ndarray]) -> int:
    for array in feeds.values():
        return int(array.shape[0]) if array.ndim else 1
    return 1
