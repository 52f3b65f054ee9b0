"""The denoiser steps of every running generation of one diffusion model, taken together.

A generation joins the model's cohort (service/sampling/cohort.py) and waits for its events.
One loop per model takes each step for all members at once: one denoiser execution on their
stacked rows (cut at max_batch_size rows, at member boundaries) and one vectorised update, so
the Python cost of a step does not grow with the number of generations. A generation that
arrives during a step joins at the next; one that is done leaves with its samples. Without a
batch policy (max_batch_size 0) each generation steps alone, in a cohort of its own.
"""

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import numpy as np

from service.errors import ModelNotReady
from service.runner import GraphRunner
from service.sampling.cohort import Cohort, Member
from service.tasks import positional

# What a generation receives: (steps done, predicted x0 (n, *shape)) while running, then its
# samples (n, *shape) float32 in network units.
StepEvent = tuple[int, np.ndarray] | np.ndarray


@dataclass(eq=False)
class _Listener:
    events: asyncio.Queue
    every: int | None  # progress every `every` steps; None: the samples only


class Stepper:
    def __init__(self, denoiser: GraphRunner, shape: tuple[int, ...], clip: tuple[float, float] | None):
        self._denoiser = denoiser
        self._shape, self._clip = tuple(shape), clip
        batcher = denoiser.batcher
        self._max_rows = batcher.policy.max_batch_size if batcher is not None else None
        self._cohort = Cohort(self._shape, clip)
        self._arrivals: list[Member] = []
        self._gone: list[Member] = []
        self._watching: set[Member] = set()
        self._loop: asyncio.Task | None = None

    async def run(self, member: Member, every: int | None = None) -> AsyncIterator[StepEvent]:
        """Take member to its last step: (steps done, x0) every `every` steps, then the samples."""
        if self._max_rows is None:
            async for event in self._alone(member, every):
                yield event
            return
        listener = _Listener(asyncio.Queue(), every)
        member.tag = listener
        if every:
            self._watching.add(member)
        self._arrivals.append(member)
        loop = asyncio.get_running_loop()
        if self._loop is None or self._loop.done() or self._loop.get_loop() is not loop:
            self._loop = loop.create_task(self._step_forever())
        done = False
        try:
            while not done:
                event = await listener.events.get()
                if isinstance(event, BaseException):
                    done = True
                    raise event
                done = isinstance(event, np.ndarray)
                yield event
        finally:
            if not done:  # the requester left early: free its rows at the next step
                self._gone.append(member)
            self._watching.discard(member)

    async def _alone(self, member: Member, every: int | None) -> AsyncIterator[StepEvent]:
        cohort = Cohort(self._shape, self._clip)
        cohort.join(member)
        while True:
            finished = await self._step(cohort)
            if finished:
                yield finished[0][1]
                return
            steps = cohort.steps_done(member)
            if every and steps % every == 0:
                yield steps, cohort.x0_pred(member)

    async def _step_forever(self) -> None:
        cohort = self._cohort
        while self._arrivals or len(cohort):
            if self._gone:
                cohort.leave(*self._gone)
                self._arrivals = [m for m in self._arrivals if m not in self._gone]
                self._gone.clear()
            if self._arrivals:
                cohort.join(*self._arrivals)
                self._arrivals.clear()
            if not len(cohort):
                continue
            try:
                finished = await self._step(cohort)
            except Exception as exc:  # noqa: BLE001  (any failure of the step reaches every member of it)
                for m in cohort.members:
                    m.tag.events.put_nowait(exc)
                cohort.leave(*cohort.members)
                continue
            except BaseException:  # cancelled (shutdown): nobody waits for a step that won't come
                for m in (*cohort.members, *self._arrivals):
                    m.tag.events.put_nowait(ModelNotReady("the model stopped while generating"))
                raise
            for m, samples in finished:
                self._watching.discard(m)
                m.tag.events.put_nowait(samples)
            for m in self._watching:
                if m.index >= 0 and m in cohort.members[m.index : m.index + 1]:
                    steps = cohort.steps_done(m)
                    if steps % m.tag.every == 0:
                        m.tag.events.put_nowait((steps, cohort.x0_pred(m)))

    async def _step(self, cohort: Cohort) -> list[tuple[Member, np.ndarray]]:
        """One denoiser execution for every member's rows (a few when over max_batch_size), one update."""
        x_t, t, cond = cohort.call()
        if self._max_rows is None or len(x_t) <= self._max_rows:
            eps = (await positional.execute(self._denoiser, x_t, t, cond))[0]
        else:
            parts = await asyncio.gather(*(positional.execute(self._denoiser, x_t[rows], t[rows], cond[rows])
                                           for rows in cohort.chunks(self._max_rows)))
            eps = np.concatenate([outputs[0] for outputs in parts])
        return cohort.update(eps)
