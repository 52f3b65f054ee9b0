"""service/sampling/diffusion.py: the numpy DDPM/DDIM sampler, driven by fake denoisers."""

import numpy as np
import pytest

from service.sampling.diffusion import DenoiseCall, run, sample, timesteps

T = 100
BETAS = np.linspace(1e-4, 0.05, T)
SHAPE = (5, 1, 8, 8)
NULL = 10


def zero_eps(x_t, t, label):
    return np.zeros_like(x_t)


def label_eps(x_t, t, label):
    """A denoiser whose eps depends on the label, so guidance changes the result."""
    return np.broadcast_to(0.01 * label.reshape(-1, 1, 1, 1), x_t.shape).astype(np.float32)


@pytest.mark.parametrize("steps", [10, 50])
@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
def test_shapes_and_number_of_calls(steps, sampler):
    calls: list[DenoiseCall] = []

    def denoise(x_t, t, label):
        calls.append((x_t.shape, t.copy(), label.copy()))
        return np.zeros_like(x_t)

    out = run(sample(BETAS, SHAPE, steps=steps, sampler=sampler, null_label=NULL, seed=1), denoise)
    assert out.shape == SHAPE and out.dtype == np.float32
    assert len(calls) == steps
    ts = [int(t[0]) for _, t, _ in calls]
    assert ts[0] == T - 1 and ts[-1] == 0 and ts == sorted(ts, reverse=True)
    assert all(shape == SHAPE for shape, _, _ in calls)
    assert all((label == NULL).all() for _, _, label in calls)


def test_timesteps_are_evenly_spaced_and_bounded():
    assert timesteps(T, 1).tolist() == [T - 1]
    assert timesteps(T, T).tolist() == list(range(T - 1, -1, -1))
    assert len(set(timesteps(T, 37).tolist())) == 37
    with pytest.raises(ValueError):
        timesteps(T, T + 1)
    with pytest.raises(ValueError):
        timesteps(T, 0)


@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
def test_same_seed_same_samples_other_seed_other_samples(sampler):
    kw = {"steps": 20, "sampler": sampler, "eta": 0.5, "null_label": NULL}
    a = run(sample(BETAS, SHAPE, seed=3, **kw), label_eps)
    b = run(sample(BETAS, SHAPE, seed=3, **kw), label_eps)
    c = run(sample(BETAS, SHAPE, seed=4, **kw), label_eps)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_ddim_eta_zero_depends_on_the_seed_only_through_the_initial_noise():
    noise = np.random.default_rng(0).standard_normal(SHAPE)
    kw = {"steps": 20, "sampler": "ddim", "eta": 0.0, "null_label": NULL, "noise": noise}
    a = run(sample(BETAS, SHAPE, seed=1, **kw), label_eps)
    b = run(sample(BETAS, SHAPE, seed=2, **kw), label_eps)
    np.testing.assert_array_equal(a, b)
    # DDPM and DDIM with eta > 0 draw fresh noise at every step: the seed matters.
    for sampler, eta in (("ddpm", 0.0), ("ddim", 1.0)):
        kw = {"steps": 20, "sampler": sampler, "eta": eta, "null_label": NULL, "noise": noise}
        a = run(sample(BETAS, SHAPE, seed=1, **kw), label_eps)
        b = run(sample(BETAS, SHAPE, seed=2, **kw), label_eps)
        assert not np.allclose(a, b)


def test_guidance_stacks_conditional_and_null_in_one_call():
    labels = np.array([0, 1, 2, 3, 4])
    seen = []

    def denoise(x_t, t, label):
        seen.append(label.copy())
        n = len(x_t) // 2
        np.testing.assert_array_equal(x_t[:n], x_t[n:])  # the same x_t for both halves
        return label_eps(x_t, t, label)

    run(sample(BETAS, SHAPE, steps=5, labels=labels, null_label=NULL, guidance=3.0, seed=0),
        denoise)
    assert len(seen) == 5
    for label in seen:
        assert label.tolist() == [0, 1, 2, 3, 4] + [NULL] * 5


def test_guidance_combines_eps_as_uncond_plus_g_times_difference():
    """With one step the sample is x0 = (x_T - sqrt(1 - ab) eps) / sqrt(ab): eps is visible."""
    labels = np.array([1, 2, 3, 4, 5])
    noise = np.zeros(SHAPE)
    alpha_bar = np.cumprod(1 - BETAS)[-1]
    g = 2.5
    out = run(sample(BETAS, SHAPE, steps=1, labels=labels, null_label=NULL, guidance=g,
                     clip=None, noise=noise, seed=0), label_eps)
    eps = 0.01 * NULL + g * 0.01 * (labels - NULL)  # (5,)
    want = -np.sqrt(1 - alpha_bar) * eps / np.sqrt(alpha_bar)
    np.testing.assert_allclose(out[:, 0, 0, 0], want, rtol=1e-5)


def test_no_guidance_or_no_labels_evaluates_the_null_label_only():
    for labels, g in ((None, 3.0), (np.arange(5), 0.0)):
        seen: list[np.ndarray] = []

        def denoise(x_t, t, label, seen=seen):
            seen.append(label.copy())
            return np.zeros_like(x_t)

        run(sample(BETAS, SHAPE, steps=3, labels=labels, null_label=NULL, guidance=g, seed=0),
            denoise)
        assert len(seen) == 3
        assert all(len(s) == SHAPE[0] and (s == NULL).all() for s in seen)


def test_progress_reports_the_previous_x0_and_clips_it():
    gen = sample(BETAS, SHAPE, steps=4, null_label=NULL, clip=(-1.0, 1.0), seed=0)
    call = next(gen)
    assert call.step == 0 and call.steps == 4 and call.x0_pred is None
    steps = [0]
    try:
        while True:
            call = gen.send(np.full(call.x_t.shape, -50.0, dtype=np.float32))  # pushes x0 high
            steps.append(call.step)
            assert call.x0_pred.shape == SHAPE
            assert call.x0_pred.max() <= 1.0 and call.x0_pred.min() >= -1.0
    except StopIteration as done:
        final = done.value
    assert steps == [0, 1, 2, 3]
    assert final.max() <= 1.0 + 1e-6


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError):
        next(sample(BETAS, SHAPE, sampler="euler", null_label=NULL))
    with pytest.raises(ValueError):
        next(sample(BETAS, SHAPE))  # unconditional needs null_label
