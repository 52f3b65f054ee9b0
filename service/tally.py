"""Many observations of one Prometheus histogram added at once.

prometheus-client's `Histogram.observe` takes a lock for the sum and another for the bucket,
after a linear search of the bounds: at one observation per request it was a measurable share of
a 1-row request's CPU. A Tally counts observations into plain per-bucket counts (one C bisect)
and `flush` adds them to the histogram's own values, one `inc` per bucket touched, so the
exposition (buckets, `_count`, `_sum`) is exactly what observing each value would have made.
"""

import asyncio
from bisect import bisect_left


class Tally:
    __slots__ = ("_bounds", "_child", "_counts", "_sum", "pending")

    def __init__(self, child) -> None:
        """`child`: a labelled Histogram (what `.labels(...)` returns)."""
        self._child = child
        self._bounds = list(child._upper_bounds)  # ends with +Inf, so every value finds a bucket
        self._counts = [0] * len(self._bounds)
        self._sum = 0.0
        self.pending = 0

    def observe(self, amount: float, count: int = 1) -> None:
        """`count` observations of `amount`."""
        # bisect_left: the first bound >= amount, the bucket `observe` would pick (amount <= bound)
        self._counts[bisect_left(self._bounds, amount)] += count
        self._sum += amount * count
        self.pending += count

    def flush(self) -> None:
        if not self.pending:
            return
        child, counts = self._child, self._counts
        child._sum.inc(self._sum)
        for i, count in enumerate(counts):
            if count:
                child._buckets[i].inc(count)
                counts[i] = 0
        self._sum = 0.0
        self.pending = 0


class TurnTally(Tally):
    """A Tally that adds its observations to the histogram at the end of the event-loop turn
    that made them, for observations made on the loop many times a turn (a token's latency, once
    per sequence per decoder step). The flush runs before the loop reads any later I/O, so a
    scrape after a response counts what that response observed."""

    __slots__ = ()

    def observe(self, amount: float, count: int = 1) -> None:
        super().observe(amount, count)
        if self.pending == count:  # the first since the last flush
            asyncio.get_running_loop().call_soon(self.flush)


class TurnDelta:
    """Additions to one Prometheus counter or gauge child made on the event loop, applied as one
    `inc` at the end of the loop turn that made them (at once off the loop). A translation
    stream added to two such series when it started and ended: with the rest of the request's
    code, those calls run with cold caches, and each cost ~7 µs of a stream at 16 concurrent
    (more than a thousand times a plain addition; docs/BENCHMARKS.md, translation, eighth pass).
    Streams that start and end in the same turn share one `inc`, or none when the net is zero.
    As with TurnTally, the flush runs before the loop reads any later I/O, so a scrape after a
    response counts it."""

    __slots__ = ("_child", "_scheduled", "pending")

    def __init__(self, child) -> None:
        """`child`: a labelled Counter or Gauge (what `.labels(...)` returns)."""
        self._child = child
        self._scheduled = False
        self.pending = 0

    def add(self, amount: int) -> None:
        self.pending += amount
        if self._scheduled:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # off the loop (a thread): no turn to wait for
            self.flush()
            return
        self._scheduled = True
        loop.call_soon(self.flush)

    def flush(self) -> None:
        self._scheduled = False
        if self.pending:
            amount, self.pending = self.pending, 0
            self._child.inc(amount)
