"""service/sampling/cohort.py: generations stepping together, one call and one update per step,
each giving bit-for-bit the samples diffusion.sample() gives it alone."""

import numpy as np
import pytest

from service.sampling import cohort as batched
from service.sampling.diffusion import run, sample, schedule

T = 100
BETAS = np.linspace(1e-4, 0.05, T)
SHAPE = (1, 4, 4)
NULL = 10
# Each: num_samples, then sample()'s keyword arguments; they differ in everything a request sets.
GENERATIONS = [
    (3, {"steps": 12, "sampler": "ddpm", "seed": 1}),
    (2, {"steps": 20, "sampler": "ddim", "seed": 2}),
    (1, {"steps": 7, "sampler": "ddim", "eta": 0.5, "seed": 3}),
    (4, {"steps": 15, "sampler": "ddpm", "labels": [3] * 4, "guidance": 2.0, "seed": 4}),
    (2, {"steps": 20, "sampler": "ddim", "labels": [7, 1], "guidance": 1.0, "seed": 5}),
    (2, {"steps": 1, "sampler": "ddim", "eta": 1.0, "labels": [0, 2], "guidance": 4.0, "seed": 6}),
    (3, {"steps": 12, "sampler": "ddpm", "seed": 1}),  # the first again
]


def denoise(x_t, t, label):
    """Row by row (as ONNX Runtime's kernels are), and depending on t and the label."""
    label = np.asarray(label, dtype=np.float64).reshape(len(label), -1)[:, :1].reshape(-1, 1, 1, 1)
    return (np.tanh(1.3 * x_t + 0.01 * t.reshape(-1, 1, 1, 1)) + 0.05 * label).astype(np.float32)


def solo(n, kw):
    return run(sample(BETAS, (n, *SHAPE), null_label=NULL, **kw), denoise)


def member(n, kw, tag=None, rows=None):
    kw = dict(kw)
    plan = schedule(BETAS, kw.pop("steps", None), kw.pop("sampler", "ddpm"), kw.pop("eta", 0.0))
    return batched.member(plan, (n, *SHAPE), null_label=NULL, labels=kw.pop("labels", None), rows=rows,
                          tag=tag, **kw)


def drive(cohort, arrivals: dict[int, list], steps_cap=200):
    """Step the cohort; arrivals[i] join before call i. Returns {tag: samples} and the calls made."""
    results, calls = {}, 0
    while len(cohort) or any(i >= calls for i in arrivals):
        cohort.join(*arrivals.get(calls, []))
        if len(cohort):
            for m, samples in cohort.update(denoise(*cohort.call())):
                results[m.tag] = samples
        calls += 1
        assert calls < steps_cap
    return results, calls


def test_members_together_match_each_alone():
    cohort = batched.Cohort(SHAPE, clip=(-1.0, 1.0))
    results, calls = drive(cohort, {0: [member(n, kw, tag=k) for k, (n, kw) in enumerate(GENERATIONS)]})
    assert calls == max(kw["steps"] for _, kw in GENERATIONS)  # one call per step for everyone
    for k, (n, kw) in enumerate(GENERATIONS):
        assert results[k].tobytes() == solo(n, kw).tobytes(), GENERATIONS[k]


@pytest.mark.parametrize("clip", [(-1.0, 1.0), None])
def test_members_joining_mid_way_match_each_alone(clip):
    cohort = batched.Cohort(SHAPE, clip=clip)
    arrivals = {}
    for k, (n, kw) in enumerate(GENERATIONS):
        arrivals.setdefault(3 * k, []).append(member(n, kw, tag=k))
    results, _ = drive(cohort, arrivals)
    for k, (n, kw) in enumerate(GENERATIONS):
        alone = run(sample(BETAS, (n, *SHAPE), null_label=NULL, clip=clip, **kw), denoise)
        assert results[k].tobytes() == alone.tobytes(), GENERATIONS[k]


def test_conditioning_rows_stand_for_labels():
    """Text-to-image: a label indexes a table of encoded prompts, and the row is the input."""
    table = np.arange(11 * 3, dtype=np.float32).reshape(11, 3) / 33
    cohort = batched.Cohort(SHAPE, clip=(-1.0, 1.0))
    m = member(2, {"steps": 5, "labels": [1, 4], "guidance": 3.0, "seed": 0}, rows=table)
    assert m.cond.shape == (4, 3) and (m.cond[2:] == table[NULL]).all()
    cohort.join(m)
    x_t, t, cond = cohort.call()
    assert x_t.shape == (4, *SHAPE) and (x_t[:2] == x_t[2:]).all() and (t == 99).all()
    np.testing.assert_array_equal(cond, m.cond)


def test_progress_and_leaving_keep_the_others_state():
    cohort = batched.Cohort(SHAPE, clip=(-1.0, 1.0))
    short, long = member(1, {"steps": 2, "seed": 0}), member(2, {"steps": 5, "seed": 1})
    cohort.join(short, long)
    cohort.update(denoise(*cohort.call()))
    before = cohort.x0_pred(long)
    finished = cohort.update(denoise(*cohort.call()))
    assert [m for m, _ in finished] == [short] and len(cohort) == 1
    assert cohort.steps_done(long) == 2 and cohort.x0_pred(long).shape == (2, *SHAPE)
    assert not np.array_equal(before, cohort.x0_pred(long))


def test_calls_are_cut_at_member_boundaries():
    cohort = batched.Cohort(SHAPE, clip=None)
    cohort.join(member(3, {"seed": 0}), member(2, {"labels": [1, 2], "guidance": 2.0, "seed": 0}),
                member(70, {"seed": 0}), member(1, {"seed": 0}))
    assert cohort.chunks(8) == [slice(0, 7), slice(7, 77), slice(77, 78)]
    assert cohort.chunks(1000) == [slice(0, 78)]
