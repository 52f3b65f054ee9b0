"""DDPM and DDIM sampling in numpy, as a generator that asks its caller for each denoiser call.

Shared by the service (which batches the calls of concurrent generations and streams progress)
and by training's judge. numpy only: no torch, no service imports.

    gen = sample(betas, (n, 1, 8, 8), steps=50, seed=0)
    call = next(gen)                 # a DenoiseCall: x_t, t, label for one denoiser run
    call = gen.send(eps)             # ... until StopIteration.value holds the samples

Schedules: Ho et al. 2020 (DDPM), Song et al. 2021 (DDIM), Ho & Salimans 2021 (classifier-free
guidance). Steps below T use an evenly spaced subsequence of the T training timesteps.
"""

from collections.abc import Callable, Generator
from dataclasses import dataclass

import numpy as np

SAMPLERS = ("ddpm", "ddim")


@dataclass
class DenoiseCall:
    """One denoiser run: eps = denoiser(x_t, t, label), each batch first.

    With guidance the batch is stacked: the first half carries the asked labels, the second
    the null label, so one run gives both; send back eps for the whole stacked batch.
    """

    x_t: np.ndarray  # (B', *shape) float32, network units
    t: np.ndarray  # (B',) int64, 0-based timestep
    label: np.ndarray  # (B',) int64
    step: int  # 0-based index of this step
    steps: int  # total number of steps
    x0_pred: np.ndarray | None  # (B, *shape) the previous step's predicted x0 (None at step 0)


def timesteps(num_train: int, steps: int) -> np.ndarray:
    """`steps` timesteps evenly spaced over 0..T-1, descending, always starting at T-1."""
    if not 1 <= steps <= num_train:
        raise ValueError(f"steps must be in 1..{num_train}, not {steps}")
    if steps == 1:
        return np.array([num_train - 1], dtype=np.int64)
    return np.linspace(0, num_train - 1, steps).round().astype(np.int64)[::-1].copy()


def sample(
    betas,
    shape: tuple[int, ...],
    steps: int | None = None,
    sampler: str = "ddpm",
    eta: float = 0.0,
    labels: np.ndarray | None = None,
    null_label: int | None = None,
    guidance: float = 0.0,
    clip: tuple[float, float] | None = (-1.0, 1.0),
    seed: int | None = None,
    noise: np.ndarray | None = None,
) -> Generator[DenoiseCall, np.ndarray, np.ndarray]:
    """Yield DenoiseCalls, receive eps, return samples (shape) in network units.

    shape: (num_samples, *data.shape). labels: (num_samples,) class indices or None for
    unconditional. guidance g: eps = eps_uncond + g * (eps_cond - eps_uncond); g = 0 or no
    labels evaluates the null label only, g = 1 the labels only, any other g both, stacked. clip: the network range predicted x0 is kept in.
    noise: the initial x_T (drawn from the seeded generator when None).
    """
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {SAMPLERS}, not {sampler!r}")
    betas = np.asarray(betas, dtype=np.float64)
    alpha_bar = np.cumprod(1.0 - betas)  # (T,)  alpha_bar_t = prod_{s<=t} (1 - beta_s)
    ts = timesteps(len(betas), len(betas) if steps is None else steps)
    n = shape[0]
    rng = np.random.Generator(np.random.PCG64(seed))
    x = rng.standard_normal(shape) if noise is None else np.asarray(noise, dtype=np.float64)
    if x.shape != tuple(shape):
        raise ValueError(f"noise has shape {x.shape}, not {tuple(shape)}")

    # g = 0 (or no labels) is eps_uncond alone and g = 1 is eps_cond alone: one half suffices.
    conditional = labels is not None and guidance != 0.0
    guided = conditional and guidance != 1.0
    if (not conditional or guided) and null_label is None:
        raise ValueError("unconditional or guided sampling needs null_label")
    if not conditional:
        call_labels = np.full(n, null_label, dtype=np.int64)
    else:
        labels = np.asarray(labels, dtype=np.int64).reshape(n)
        call_labels = np.concatenate([labels, np.full(n, null_label)]) if guided else labels

    x0 = None
    for i, t in enumerate(ts):
        x_in = np.concatenate([x, x]) if guided else x
        eps = yield DenoiseCall(
            x_t=x_in.astype(np.float32),
            t=np.full(len(x_in), t, dtype=np.int64),
            label=call_labels,
            step=i,
            steps=len(ts),
            x0_pred=None if x0 is None else x0.astype(np.float32),
        )
        eps = np.asarray(eps, dtype=np.float64).reshape(x_in.shape)
        if guided:  # Ho & Salimans 2021, eq. 6 (with w = g - 1)
            eps = eps[n:] + guidance * (eps[:n] - eps[n:])

        ab_t = alpha_bar[t]
        ab_prev = alpha_bar[ts[i + 1]] if i + 1 < len(ts) else 1.0
        # x0 from x_t = sqrt(ab) x0 + sqrt(1 - ab) eps  (Ho et al. 2020, eq. 4)
        x0 = (x - np.sqrt(1.0 - ab_t) * eps) / np.sqrt(ab_t)
        if clip is not None:
            x0 = np.clip(x0, *clip)
            eps = (x - np.sqrt(ab_t) * x0) / np.sqrt(1.0 - ab_t)  # consistent with clipped x0
        last = i + 1 == len(ts)
        if sampler == "ddpm":
            # posterior q(x_prev | x_t, x0) of the (respaced) chain (Ho et al. 2020, eq. 6-7)
            beta_t = 1.0 - ab_t / ab_prev
            mean = (np.sqrt(ab_prev) * beta_t / (1.0 - ab_t)) * x0 + (
                np.sqrt(1.0 - beta_t) * (1.0 - ab_prev) / (1.0 - ab_t)) * x
            var = beta_t * (1.0 - ab_prev) / (1.0 - ab_t)
            x = mean if last else mean + np.sqrt(var) * rng.standard_normal(shape)
        else:
            # DDIM (Song et al. 2021, eq. 12 and 16): eta = 0 deterministic, eta = 1 DDPM-like
            sigma = eta * np.sqrt((1.0 - ab_prev) / (1.0 - ab_t) * (1.0 - ab_t / ab_prev))
            direction = np.sqrt(max(1.0 - ab_prev - sigma**2, 0.0)) * eps
            x = np.sqrt(ab_prev) * x0 + direction
            if sigma > 0 and not last:
                x = x + sigma * rng.standard_normal(shape)
    return x.astype(np.float32)


def run(sample_gen: Generator[DenoiseCall, np.ndarray, np.ndarray],
        denoise: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]) -> np.ndarray:
    """Drive a sample() generator synchronously: eps = denoise(x_t, t, label) at each step."""
    try:
        call = next(sample_gen)
        while True:
            call = sample_gen.send(denoise(call.x_t, call.t, call.label))
    except StopIteration as done:
        return done.value
