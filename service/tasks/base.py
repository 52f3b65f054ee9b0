"""What every task shares: a graph runner that times and counts executions, and the model base."""

import asyncio
import time
from concurrent.futures import Executor

import numpy as np

from service import metrics
from service.batching import Batcher, BatchPolicy
from service.config import ModelConfig
from service.errors import InvalidInput
from service.runtime import Graph, TensorSpec
from service.signature import check_inputs
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
        self.graph = graph
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

    async def run(self, feeds: dict[str, np.ndarray], output_names: list[str] | None = None) -> dict[str, np.ndarray]:
        if self.batcher is not None:
            outputs = await self.batcher.submit(feeds)
            return {n: outputs[n] for n in output_names} if output_names else outputs
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self.run_sync, feeds, output_names)

    async def execute(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run now in a worker thread, past the batcher: for a caller that gathers its own batch
        (the diffusion stepper stacks every generation's step), so no queue delay applies."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self.run_sync, feeds)

    def close(self) -> None:
        """Stop batching once the requests already queued are served."""
        if self.batcher is not None:
            self.batcher.close()

    def run_sync(self, feeds: dict[str, np.ndarray], output_names: list[str] | None = None) -> dict[str, np.ndarray]:
        started = time.perf_counter()
        outputs = self.graph.run(feeds, output_names)
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


class ServedModel:
    """One loaded version of a model: its V2 signature and `infer`. Tasks subclass it."""

    platform = "onnxruntime_onnx"
    peers = None  # set by the loader: (name, version) -> another loaded model (a guard's density)

    def __init__(self, name: str, version: int, config: ModelConfig, graphs: dict[str, GraphRunner]):
        self.name = name
        self.version = version
        self.config = config
        self.graphs = graphs
        first = next(iter(graphs.values()))
        self.provider = first.graph.provider
        self.stats = first.stats

    @property
    def inputs(self) -> list[TensorSpec]:
        raise NotImplementedError

    @property
    def outputs(self) -> list[TensorSpec]:
        raise NotImplementedError

    async def infer(self, inputs: dict[str, np.ndarray], output_names: list[str] | None) -> dict[str, np.ndarray]:
        """Tensors in, tensors out, after the caller checked them against `inputs`."""
        raise NotImplementedError

    def check_inputs(self, inputs: dict[str, np.ndarray], datatypes: dict[str, str]) -> None:
        """Raise InvalidInput unless the tensors fit `inputs` (generative models relax this)."""
        check_inputs(self.inputs, inputs, datatypes)

    # Task endpoints (service/tasks/*): a model of another task answers 400 naming its task.
    async def predict(self, body: dict) -> list[dict]:
        raise self.no_endpoint(":predict")

    async def reconstruct(self, body: dict) -> list[dict]:
        raise self.no_endpoint(":reconstruct")

    async def explain(self, body: dict) -> list[dict]:
        raise self.no_endpoint(":explain")

    def plan(self, params: dict, stream: bool = False):
        raise self.no_endpoint("generate")

    def no_endpoint(self, endpoint: str) -> InvalidInput:
        return InvalidInput(f"model '{self.name}' is a {self.config.task} model, which has no {endpoint} endpoint")

    def items(self, inputs: dict[str, np.ndarray]) -> int:
        """How many inferences a request holds: its rows when the model batches, else 1."""
        spec = self.inputs[0] if self.inputs else None
        if spec is not None and spec.has_batch_axis and spec.name in inputs:
            return int(inputs[spec.name].shape[0])
        return 1

    def metadata(self) -> dict:
        return {
            "name": self.name,
            "versions": [str(self.version)],
            "platform": self.platform,
            "inputs": [spec.as_dict() for spec in self.inputs],
            "outputs": [spec.as_dict() for spec in self.outputs],
            # Not in the protocol's metadata; clients ignore what they do not know, and an
            # operator needs to see where a model really runs and what its endpoints do.
            "parameters": {"task": self.config.task, "provider": self.provider},
        }
