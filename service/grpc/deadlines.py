"""The request timeout (--request-timeout-s) of every unary RPC on one timer.

Every call has the same timeout, so calls expire in the order they started: one ordered map of
running calls and one TimerHandle, armed at the oldest call's deadline, cost less than a Timeout
and a TimerHandle per call (asyncio.timeout), as HTTP's fast path times requests by a timestamp
(service/http_infer.py).
"""

import asyncio
from collections import OrderedDict


class Deadlines:
    def __init__(self, timeout_s: float):
        self.timeout_s = timeout_s
        self.running: OrderedDict[asyncio.Task, float] = OrderedDict()  # task -> deadline (loop time)
        self.expired: set[asyncio.Task] = set()
        self.timer: asyncio.TimerHandle | None = None

    def start(self) -> asyncio.Task:
        """Time the current task from now; end(task) when it finishes, however."""
        loop = asyncio.get_running_loop()
        task = asyncio.current_task(loop)
        deadline = loop.time() + self.timeout_s
        self.running[task] = deadline
        if self.timer is None:
            self.timer = loop.call_at(deadline, self._expire, loop)
        return task

    def end(self, task: asyncio.Task) -> bool:
        """Forget the task; True when its deadline passed (its cancellation was ours)."""
        self.running.pop(task, None)
        if task in self.expired:
            self.expired.discard(task)
            return True
        return False

    def _expire(self, loop: asyncio.AbstractEventLoop) -> None:
        self.timer = None
        now = loop.time()
        running = self.running
        while running:
            task, deadline = next(iter(running.items()))
            if deadline > now:
                self.timer = loop.call_at(deadline, self._expire, loop)
                return
            del running[task]
            self.expired.add(task)
            task.cancel()
