"""Many diffusion generations stepping together: their state in arrays, one update per step.

Each generation (a Member) keeps its own steps, sampler, eta, labels, guidance and seeded
generator; its rows sit side by side with the others' in one x. A step is one denoiser call on
the stacked rows of every member and one vectorised update (diffusion.py's equations, with
each row's own constants), so its Python cost does not grow with the number of members. Only
fresh noise is drawn member by member, from each one's own generator: a member's samples are
those it gets alone (`diffusion.sample`), whatever company it keeps.

    cohort = Cohort((1, 8, 8), clip=(-1, 1))
    cohort.join(member)                  # between steps
    x_t, t, cond = cohort.call()         # the denoiser's three inputs, call rows first
    finished = cohort.update(eps)        # [(member, samples)] of those that took their last step
"""

from dataclasses import dataclass, field

import numpy as np

from service.sampling import diffusion
from service.sampling.diffusion import C_NOISE, Schedule


@dataclass(eq=False)
class Member:
    """One generation: n samples, a schedule, its generator, the third denoiser input of its rows.

    cond holds n rows, or 2n when guided: the asked conditioning, then the null one.
    """

    schedule: Schedule
    rng: np.random.Generator
    x: np.ndarray  # (n, *shape) float64: x_T when it joins
    cond: np.ndarray  # (n or 2n, ...) the denoiser's third input for its call rows
    guidance: float | None = None  # set when guided
    tag: object = None  # the caller's own handle
    # Where it sits in its cohort, set by the cohort at each change of membership.
    rows: slice = field(default_factory=lambda: slice(0, 0), repr=False)
    index: int = field(default=-1, repr=False)
    steps_done: int = 0
    x0: np.ndarray | None = field(default=None, repr=False)  # its last predicted x0

    @property
    def n(self) -> int:
        return len(self.x)


def member(plan: Schedule, shape: tuple[int, ...], labels: np.ndarray | None = None,
           null_label: int | None = None, guidance: float = 0.0, seed: int | None = None,
           rows: np.ndarray | None = None, tag: object = None) -> Member:
    """A Member from diffusion.sample()'s arguments (the schedule made by diffusion.schedule, which
    a model can reuse); with `rows`, a label is a row of it."""
    rng = np.random.Generator(np.random.PCG64(seed))
    x = diffusion.initial_noise(rng, shape, None)
    label, guided = diffusion.call_labels(shape[0], labels, null_label, guidance)
    cond = label if rows is None else rows[label]
    return Member(plan, rng, x, cond, float(guidance) if guided else None, tag)


class Cohort:
    """The generations of one denoiser that step together."""

    def __init__(self, shape: tuple[int, ...], clip: tuple[float, float] | None):
        self.shape = tuple(shape)  # one sample's shape
        self.clip = clip
        self.members: list[Member] = []
        self._build([])

    def __len__(self) -> int:
        return len(self.members)

    def join(self, *new: Member) -> None:
        """New members take their first step with the next call."""
        self._save()
        self._build([*self.members, *new])

    def leave(self, *gone: Member) -> None:
        self._save()
        self._build([m for m in self.members if m not in gone])

    def call(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """x_t (Rc, *shape) float32, t (Rc,) int64 and the conditioning rows of the next call."""
        if self._plain:
            return self.x.astype(np.float32), self._t[self._pos], self._cond
        return self.x[self._source].astype(np.float32), self._t[self._pos[self._source]], self._cond

    def chunks(self, max_rows: int) -> list[slice]:
        """The call rows cut at member boundaries into runs of at most max_rows (a member larger
        than that is a run of its own)."""
        runs, start, size = [], 0, 0
        for rows in self._call_sizes:
            if size and size + rows > max_rows:
                runs.append(slice(start, start + size))
                start, size = start + size, 0
            size += rows
        if size:
            runs.append(slice(start, start + size))
        return runs

    def update(self, eps: np.ndarray) -> list[tuple[Member, np.ndarray]]:
        """Take one step for every member with eps (Rc, *shape) of the call; the members that
        took their last step leave, each with its samples (n, *shape) float32."""
        e = np.asarray(eps, dtype=np.float64).reshape(len(self._source), *self.shape)
        eps = e if self._plain else e[self._primary]
        if len(self._guided):
            cond, null = e[self._primary[self._guided]], e[self._null]
            eps[self._guided] = diffusion.guide(cond, null, self._guidance)
        coef = self._coef[:, self._pos]  # (6, R) each row's constants at its own step
        x, self.x0 = diffusion.denoise_step(self.x, eps, coef, self.clip)
        noisy = self._noisy[self._member_pos]
        if noisy.any():  # fresh noise, each member's from its own generator
            for k in np.flatnonzero(noisy):
                m = self.members[k]
                x[m.rows] = x[m.rows] + coef[C_NOISE, m.rows.start] * m.rng.standard_normal((m.n, *self.shape))
        self.x = x
        self._pos += 1
        self._member_pos += 1
        ended = self._member_pos == self._member_end
        if not ended.any():
            return []
        done = np.flatnonzero(ended)
        finished = [self.members[k] for k in done]
        out = [(m, x[m.rows].astype(np.float32)) for m in finished]
        self.leave(*finished)
        return out

    def steps_done(self, m: Member) -> int:
        """How many steps member m has taken."""
        return int(self._member_pos[m.index] - self._member_start[m.index])

    def x0_pred(self, m: Member) -> np.ndarray:
        """Member m's predicted clean samples after its last step (n, *shape) float32."""
        return self.x0[m.rows].astype(np.float32)

    # ------------------------------------------------------------------ membership
    def _save(self) -> None:
        """Write the running state back into the members before the arrays are rebuilt."""
        for m in self.members:
            m.x, m.x0 = self.x[m.rows], self.x0[m.rows]
            m.steps_done = self.steps_done(m)

    def _build(self, members: list[Member]) -> None:
        """Lay the members' rows side by side: state rows, call rows, each row's constants."""
        self.members = members
        sizes = np.array([m.n for m in members], dtype=np.int64)
        lengths = np.array([m.schedule.steps for m in members], dtype=np.int64)
        guided = np.array([m.guidance is not None for m in members], dtype=bool)
        call_sizes = sizes * (1 + guided)
        row_start = np.concatenate([[0], np.cumsum(sizes)])[:-1]
        call_start = np.concatenate([[0], np.cumsum(call_sizes)])[:-1]
        self._member_start = np.concatenate([[0], np.cumsum(lengths)])[:-1]  # into the stacked tables
        self._member_end = self._member_start + lengths
        self._member_pos = self._member_start + np.array([m.steps_done for m in members], dtype=np.int64)
        for k, m in enumerate(members):
            m.index, m.rows = k, slice(int(row_start[k]), int(row_start[k] + m.n))
        empty = np.zeros((0, *self.shape))
        self.x = np.concatenate([empty, *(m.x for m in members)])  # (R, *shape)
        self.x0 = np.concatenate([empty, *(np.zeros_like(m.x) if m.x0 is None else m.x0 for m in members)])
        self._coef = np.concatenate([np.zeros((0, 6)), *(m.schedule.coef for m in members)]).T.copy()  # (6, ΣS)
        self._t = np.concatenate([np.zeros(0, np.int64), *(m.schedule.t for m in members)])
        self._noisy = np.concatenate([np.zeros(0, bool), *(m.schedule.noisy for m in members)])
        self._pos = np.repeat(self._member_pos, sizes)  # (R,) each row's step, into the tables
        # Call rows: each member's own rows, then again (with the null conditioning) when guided.
        offset = np.arange(len(self.x)) - np.repeat(row_start, sizes)  # row within its member
        self._primary = np.repeat(call_start, sizes) + offset  # (R,) the call row of each row
        self._guided = np.flatnonzero(np.repeat(guided, sizes))  # rows that combine two call rows
        self._null = self._primary[self._guided] + np.repeat(sizes, sizes)[self._guided]
        self._guidance = np.repeat([m.guidance or 0.0 for m in members], sizes)[self._guided]
        self._guidance = self._guidance.reshape(-1, *(1,) * len(self.shape))
        source = np.zeros(int(call_sizes.sum()), dtype=np.int64)  # (Rc,) the state row of each call row
        source[self._primary] = np.arange(len(self.x))
        source[self._null] = self._guided
        self._source = source
        self._plain = not guided.any()  # call rows are the state rows: no gathering needed
        self._call_sizes = call_sizes.tolist()
        self._cond = np.concatenate([m.cond for m in members]) if members else np.zeros(0, np.int64)
