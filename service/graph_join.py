"""Concurrent graphs share one execution, joined into one disjoint graph (what graph libraries
call batching): node features stacked, each graph's edge indices offset by the nodes before it.
A GCN never passes a message between graphs that share no edge, so each graph's rows of the
joined outputs are exactly what it would get alone.

At most `concurrent` executions at a time: the graphs that arrive while they run are joined into
the next, so executions grow with load and a lone request never waits for company. An execution
holds at most `max_graphs` graphs (1: every graph runs alone) and the nodes and edges of one
request's limits. bench/graphs.py measures what it pays.
"""

import asyncio
import itertools
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import numpy as np

from service.errors import ServiceError

# (x (N, F), edge_index (2, E)) -> outputs whose first axis is the N nodes
RunGraph = Callable[[np.ndarray, np.ndarray], Awaitable[dict[str, np.ndarray]]]


@dataclass
class _Pending:
    x: np.ndarray
    edge_index: np.ndarray
    future: asyncio.Future


def join(xs: list[np.ndarray], edge_indices: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(sum N, F) features and (2, sum E) edges of one disjoint graph."""
    offsets = np.cumsum([0] + [len(x) for x in xs[:-1]])
    edges = [e + o for e, o in zip(edge_indices, offsets)]
    return np.concatenate(xs), np.concatenate(edges, axis=1)


def split(outputs: dict[str, np.ndarray], nodes: list[int]) -> list[dict[str, np.ndarray]]:
    """Each graph's own rows of the joined outputs."""
    bounds = np.cumsum([0, *nodes])
    return [{name: out[a:b] for name, out in outputs.items()} for a, b in itertools.pairwise(bounds)]


class GraphJoiner:
    """A queue of graphs for one model; `submit` is the only door."""

    def __init__(self, run: RunGraph, max_graphs: int, max_nodes: int, max_edges: int, concurrent: int = 2):
        self._run = run
        self.max_graphs, self.max_nodes, self.max_edges = max(1, max_graphs), max_nodes, max_edges
        self._concurrent = concurrent
        self._queue: deque[_Pending] = deque()
        self._drainers: set[asyncio.Task] = set()

    async def submit(self, x: np.ndarray, edge_index: np.ndarray) -> dict[str, np.ndarray]:
        """Queue one checked graph (indices within its own nodes) and wait for its own outputs."""
        loop = asyncio.get_running_loop()
        pending = _Pending(x, edge_index, loop.create_future())
        self._queue.append(pending)
        if len(self._drainers) < self._concurrent:
            drainer = loop.create_task(self._drain())
            self._drainers.add(drainer)  # a reference, so the task is not collected mid-run
            drainer.add_done_callback(self._drainers.discard)
        return await pending.future

    async def _drain(self) -> None:
        while self._queue:
            batch = self._take()
            if batch:
                await self._execute(batch)

    def _take(self) -> list[_Pending]:
        """The oldest graph, and those after it while the joined graph stays within the limits."""
        batch = [self._queue.popleft()]
        nodes, edges = len(batch[0].x), batch[0].edge_index.shape[1]
        while self._queue and len(batch) < self.max_graphs:
            nxt = self._queue[0]
            if nodes + len(nxt.x) > self.max_nodes or edges + nxt.edge_index.shape[1] > self.max_edges:
                break  # it opens the next execution; a graph is never cut in two
            batch.append(self._queue.popleft())
            nodes, edges = nodes + len(nxt.x), edges + nxt.edge_index.shape[1]
        return [p for p in batch if not p.future.done()]  # skip requesters that gave up

    async def _execute(self, batch: list[_Pending]) -> None:
        try:
            if len(batch) == 1:
                results = [await self._run(batch[0].x, batch[0].edge_index)]
            else:
                outputs = await self._run(*join([p.x for p in batch], [p.edge_index for p in batch]))
                results = split(outputs, [len(p.x) for p in batch])
        except ServiceError as exc:
            if len(batch) == 1:
                _settle(batch[0], exception=exc)
                return
            for pending in batch:  # one graph broke the joined run: only its requester learns it
                await self._execute([pending])
            return
        except BaseException as exc:  # a fault of ours, or shutdown: every requester learns it
            for pending in batch:
                _settle(pending, exception=exc)
            if not isinstance(exc, Exception):
                raise
            return
        for pending, result in zip(batch, results):
            _settle(pending, result=result)


def _settle(pending: _Pending, result=None, exception: BaseException | None = None) -> None:
    if pending.future.done():
        return
    if exception is not None:
        pending.future.set_exception(exception)
    else:
        pending.future.set_result(result)
