"""DDPM and DDIM sampling in numpy, as a generator that asks its caller for each denoiser call.

Shared by the service and by training's judge. numpy only: no torch, no service imports.

    gen = sample(betas, (n, 1, 8, 8), steps=50, seed=0)
    call = next(gen)                 # a DenoiseCall: x_t, t, label for one denoiser run
    call = gen.send(eps)             # ... until StopIteration.value holds the samples

The update is written for many rows at once, each with its own constants (`schedule`,
`denoise_step`, `guide`): service/sampling/cohort.py runs the steps of many generations with
one call of each, and a generation gives the same samples there as here, alone.

Schedules: Ho et al. 2020 (DDPM), Song et al. 2021 (DDIM), Ho & Salimans 2021 (classifier-free
guidance). Steps below T use an evenly spaced subsequence of the T training timesteps.
"""

from collections.abc import Callable, Generator
from dataclasses import dataclass

import numpy as np

SAMPLERS = ("ddpm", "ddim")

# The columns of Schedule.coef: a step's constants, x_prev = C_X0 x0 + C_X x_t + C_EPS eps + C_NOISE z.
SQRT_AB, SQRT_1M_AB, C_X0, C_X, C_EPS, C_NOISE = range(6)


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


@dataclass(frozen=True)
class Schedule:
    """One generation's constants, a row per step: what its update at step i needs."""

    t: np.ndarray  # (S,) int64 timesteps, descending
    coef: np.ndarray  # (S, 6) float64, columns SQRT_AB ... C_NOISE
    noisy: np.ndarray  # (S,) bool: step i draws fresh noise from the generation's generator

    @property
    def steps(self) -> int:
        return len(self.t)


def timesteps(num_train: int, steps: int) -> np.ndarray:
    """`steps` timesteps evenly spaced over 0..T-1, descending, always starting at T-1."""
    if not 1 <= steps <= num_train:
        raise ValueError(f"steps must be in 1..{num_train}, not {steps}")
    if steps == 1:
        return np.array([num_train - 1], dtype=np.int64)
    return np.linspace(0, num_train - 1, steps).round().astype(np.int64)[::-1].copy()


def schedule(betas, steps: int | None = None, sampler: str = "ddpm", eta: float = 0.0) -> Schedule:
    """Every step's constants for one sampler, eta and number of steps."""
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {SAMPLERS}, not {sampler!r}")
    betas = np.asarray(betas, dtype=np.float64)
    alpha_bar = np.cumprod(1.0 - betas)  # (T,)  alpha_bar_t = prod_{s<=t} (1 - beta_s)
    ts = timesteps(len(betas), len(betas) if steps is None else steps)
    ab_t = alpha_bar[ts]  # (S,)
    ab_prev = np.append(alpha_bar[ts[1:]], 1.0)  # (S,)  the last step lands on x0
    coef = np.zeros((len(ts), 6))
    coef[:, SQRT_AB] = np.sqrt(ab_t)
    coef[:, SQRT_1M_AB] = np.sqrt(1.0 - ab_t)
    last = np.arange(len(ts)) == len(ts) - 1
    if sampler == "ddpm":
        # posterior q(x_prev | x_t, x0) of the (respaced) chain (Ho et al. 2020, eq. 6-7)
        beta_t = 1.0 - ab_t / ab_prev
        coef[:, C_X0] = np.sqrt(ab_prev) * beta_t / (1.0 - ab_t)
        coef[:, C_X] = np.sqrt(1.0 - beta_t) * (1.0 - ab_prev) / (1.0 - ab_t)
        var = beta_t * (1.0 - ab_prev) / (1.0 - ab_t)
        coef[:, C_NOISE] = np.sqrt(var)
        noisy = ~last
    else:
        # DDIM (Song et al. 2021, eq. 12 and 16): eta = 0 deterministic, eta = 1 DDPM-like
        sigma = eta * np.sqrt((1.0 - ab_prev) / (1.0 - ab_t) * (1.0 - ab_t / ab_prev))
        coef[:, C_X0] = np.sqrt(ab_prev)
        coef[:, C_EPS] = np.sqrt(np.maximum(1.0 - ab_prev - sigma**2, 0.0))  # the direction to x_t
        coef[:, C_NOISE] = sigma
        noisy = (sigma > 0) & ~last
    coef[last, C_NOISE] = 0.0
    return Schedule(ts, coef, noisy)


def guide(eps_cond: np.ndarray, eps_null: np.ndarray, guidance) -> np.ndarray:
    """Classifier-free guidance (Ho & Salimans 2021, eq. 6 with w = g - 1)."""
    return eps_null + guidance * (eps_cond - eps_null)


def denoise_step(x: np.ndarray, eps: np.ndarray, coef: np.ndarray,
                 clip: tuple[float, float] | None) -> tuple[np.ndarray, np.ndarray]:
    """x_t and eps (R, *shape) float64, the step's constants (6,) or each row's (6, R) ->
    (x_prev before fresh noise, predicted x0)."""
    c = coef.reshape(6, -1, *(1,) * (x.ndim - 1)) if coef.ndim == 2 else coef
    # x0 from x_t = sqrt(ab) x0 + sqrt(1 - ab) eps  (Ho et al. 2020, eq. 4)
    x0 = (x - c[SQRT_1M_AB] * eps) / c[SQRT_AB]
    if clip is not None:
        x0 = np.minimum(np.maximum(x0, clip[0]), clip[1])  # np.clip, without its wrappers' cost
        eps = (x - c[SQRT_AB] * x0) / c[SQRT_1M_AB]  # consistent with clipped x0
    return c[C_X0] * x0 + (c[C_X] * x + c[C_EPS] * eps), x0


def call_labels(n: int, labels: np.ndarray | None, null_label: int | None,
                guidance: float) -> tuple[np.ndarray, bool]:
    """The label of each denoiser row (n, or 2n stacked when guided) and whether it is guided.

    g = 0 (or no labels) is eps_uncond alone and g = 1 is eps_cond alone: one half suffices.
    """
    conditional = labels is not None and guidance != 0.0
    guided = conditional and guidance != 1.0
    if (not conditional or guided) and null_label is None:
        raise ValueError("unconditional or guided sampling needs null_label")
    if not conditional:
        return np.full(n, null_label, dtype=np.int64), False
    labels = np.asarray(labels, dtype=np.int64).reshape(n)
    return (np.concatenate([labels, np.full(n, null_label)]) if guided else labels), guided


def initial_noise(rng: np.random.Generator, shape: tuple[int, ...], noise: np.ndarray | None) -> np.ndarray:
    """x_T: drawn from the generation's own generator, or the one given."""
    x = rng.standard_normal(shape) if noise is None else np.asarray(noise, dtype=np.float64)
    if x.shape != tuple(shape):
        raise ValueError(f"noise has shape {x.shape}, not {tuple(shape)}")
    return x


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
    labels evaluates the null label only, g = 1 the labels only, any other g both, stacked.
    clip: the network range predicted x0 is kept in.
    noise: the initial x_T (drawn from the seeded generator when None).
    """
    plan = schedule(betas, steps, sampler, eta)
    n = shape[0]
    rng = np.random.Generator(np.random.PCG64(seed))
    x = initial_noise(rng, shape, noise)
    label, guided = call_labels(n, labels, null_label, guidance)

    x0 = None
    for i in range(plan.steps):
        x_in = np.concatenate([x, x]) if guided else x
        eps = yield DenoiseCall(
            x_t=x_in.astype(np.float32),
            t=np.full(len(x_in), plan.t[i], dtype=np.int64),
            label=label,
            step=i,
            steps=plan.steps,
            x0_pred=None if x0 is None else x0.astype(np.float32),
        )
        eps = np.asarray(eps, dtype=np.float64).reshape(x_in.shape)
        if guided:
            eps = guide(eps[:n], eps[n:], guidance)
        x, x0 = denoise_step(x, eps, plan.coef[i], clip)
        if plan.noisy[i]:
            x = x + plan.coef[i, C_NOISE] * rng.standard_normal(shape)
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
