"""Execution of one graph: its session in a worker thread, its batcher, its metrics and
statistics. Tasks call `run`; nothing above the tasks touches a runner."""

import asyncio
import time
from concurrent.futures import Executor

import numpy as np

from service import metrics
from service.batching import Batcher, BatchPolicy
from service.runtime import Graph, TensorSpec
from service.stats import ModelStats


class GraphRunner:
    """Runs one graph in a worker thread, never on the event loop, and records its metrics.

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
        self.stats = stats or ModelStats()  # shared by the graphs of one model version
        batchable = all(s.has_batch_axis for s in (*graph.inputs, *graph.outputs))
        self.batcher = (
            Batcher(self.run_sync, executor, policy, labels, self.stats)
            if policy is not None and policy.max_batch_size > 0 and batchable
            else None
        )
        self._exec_count = metrics.EXEC_COUNT.labels(*labels)
        self._compute = metrics.COMPUTE_DURATION.labels(*labels)
        self._batch_size = metrics.BATCH_SIZE.labels(*labels)

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
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self.run_sync, feeds, output_names)

    def close(self) -> None:
        """Stop batching once the requests already queued are served."""
        if self.batcher is not None:
            self.batcher.close()

    def run_sync(self, feeds: dict[str, np.ndarray], output_names: list[str] | None = None) -> dict[str, np.ndarray]:
        started = time.perf_counter()
        outputs = self._graph.run(feeds, output_names)
        elapsed = time.perf_counter() - started
        rows = _rows(feeds)
        self._compute.observe(elapsed)
        self._exec_count.inc()
        self._batch_size.observe(rows)
        self.stats.executed(rows, elapsed)
        return outputs


def _rows(feeds: dict[str, np.ndarray]) -> int:
    for array in feeds.values():
        return int(array.shape[0]) if array.ndim else 1
    return 1
