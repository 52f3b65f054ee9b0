"""A class-conditional DDPM on digits: the denoiser eps(x_t, t, label) is the exported network.

Ho et al. 2020 (DDPM); Ho & Salimans 2021 (classifier-free guidance); Prince, Understanding
Deep Learning, ch. 18. Labels are dropped to the null class 10 with probability p_uncond so
one network is both conditional and unconditional. The sampling loop is not in the graph: it
is service/sampling/diffusion.py (numpy), which the service and the judge below both run.
"""

import copy
import math
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from service.sampling.diffusion import run, sample
from training import data, generated, writer
from training.export import count_parameters, export_verified, session

NETWORK_RANGE = (-1.0, 1.0)
NUM_CLASSES = 10
NULL_LABEL = 10


@dataclass
class Config:
    name: str = "digits-diffusion"
    timesteps: int = 100  # T: kept small so numpy sampling in the service is fast
    hidden: int = 256
    blocks: int = 4
    steps: int = 12000
    batch_size: int = 256
    lr: float = 1e-3
    p_uncond: float = 0.2  # Ho & Salimans 2021 found 0.1-0.2 best
    ema: float = 0.999
    guidance: float = 2.0  # the guidance scale the conditional judge uses
    default_steps: int = 50
    seed: int = 0


# --quick (tests) proves the pipeline, not the model: one narrow block. An export costs per traced
# op, and it is most of a quick run.
QUICK = {"hidden": 32, "blocks": 1}


def cosine_betas(timesteps: int, s: float = 0.008) -> np.ndarray:
    """alpha_bar(t) = cos^2(((t/T + s) / (1 + s)) pi/2) (Nichol & Dhariwal 2021, eq. 17)."""
    f = np.cos(((np.arange(timesteps + 1) / timesteps + s) / (1 + s)) * math.pi / 2) ** 2
    return np.clip(1 - f[1:] / f[:-1], 1e-5, 0.999)  # (T,) beta_t = 1 - ab_t / ab_{t-1}


def sinusoidal(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Transformer position embedding of the timestep (Vaswani et al. 2017; Ho et al. 2020)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32) / half)
    angles = t.float()[:, None] * freqs[None]  # (B, half)
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)  # (B, dim)


class Block(nn.Module):
    """h + W2 SiLU(W1 LN(h) + C emb): a residual MLP block conditioned on time and label."""

    def __init__(self, hidden: int):
        super().__init__()
        self.norm = nn.LayerNorm(hidden)
        self.lin1 = nn.Linear(hidden, hidden)
        self.cond = nn.Linear(hidden, hidden)
        self.lin2 = nn.Linear(hidden, hidden)

    def forward(self, h: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        return h + self.lin2(nn.functional.silu(self.lin1(self.norm(h)) + self.cond(emb)))


class Denoiser(nn.Module):
    """eps(x_t, t, label): (B, 1, 8, 8) float, (B,) int64, (B,) int64 -> (B, 1, 8, 8)."""

    def __init__(self, hidden: int, blocks: int):
        super().__init__()
        self.hidden = hidden
        self.inp = nn.Linear(64, hidden)
        self.time = nn.Sequential(nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, hidden))
        self.label = nn.Embedding(NUM_CLASSES + 1, hidden)  # index 10 is the null label
        self.blocks = nn.ModuleList(Block(hidden) for _ in range(blocks))
        self.out = nn.Sequential(nn.LayerNorm(hidden), nn.Linear(hidden, 64))

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        emb = self.time(sinusoidal(t, self.hidden)) + self.label(label)  # (B, H)
        h = self.inp(x_t.flatten(1))  # (B, 64) -> (B, H)
        for block in self.blocks:
            h = block(h, emb)
        return self.out(h).view(-1, 1, 8, 8)


def train(cfg: Config, x_train: np.ndarray, y_train: np.ndarray, betas: np.ndarray, quick: bool):
    """Ho et al. 2020, Algorithm 1: minimise ||eps - eps(sqrt(ab) x0 + sqrt(1-ab) eps, t)||^2."""
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    y = torch.from_numpy(y_train)  # (N,)

    def labels(idx: torch.Tensor) -> torch.Tensor:
        label = y[idx].clone()  # (B,)
        label[torch.rand(cfg.batch_size, generator=gen) < cfg.p_uncond] = NULL_LABEL
        return label

    return fit_denoiser(Denoiser(cfg.hidden, cfg.blocks), cfg, x_train, labels, betas, quick, gen)


def fit_denoiser(net: nn.Module, cfg, x_train: np.ndarray, condition, betas: np.ndarray, quick: bool,
                 gen: torch.Generator):
    """Algorithm 1's loop for any conditioned denoiser: `condition(idx)` gives the batch's third
    input (a label, a caption's tokens), already dropped to null w.p. p_uncond; returns the EMA
    of the weights (what is exported) and the loss curve; `cfg` gives lr, steps, batch_size,
    timesteps, ema and name."""
    x = torch.from_numpy(x_train)  # (N, 1, 8, 8)
    alpha_bar = torch.from_numpy(np.cumprod(1 - betas)).float()  # (T,)
    ema = copy.deepcopy(net).requires_grad_(False)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=0.0)
    steps = 20 if quick else cfg.steps
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, cfg.lr, total_steps=steps, pct_start=0.1)
    curves: dict[str, list[float]] = {"eps MSE": []}
    bar = tqdm(range(steps), desc=cfg.name, mininterval=10)
    for step in bar:
        idx = torch.randint(0, len(x), (cfg.batch_size,), generator=gen)
        x0, cond = x[idx], condition(idx)  # (B, 1, 8, 8), (B, ...)
        t = torch.randint(0, cfg.timesteps, (cfg.batch_size,), generator=gen)  # (B,)
        eps = torch.randn(x0.shape, generator=gen)
        ab = alpha_bar[t].view(-1, 1, 1, 1)
        x_t = ab.sqrt() * x0 + (1 - ab).sqrt() * eps  # q(x_t | x0), Ho et al. 2020 eq. 4
        loss = nn.functional.mse_loss(net(x_t, t, cond), eps)  # L_simple, eq. 14
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        with torch.no_grad():
            for pe, p in zip(ema.parameters(), net.parameters()):
                pe.lerp_(p, 1.0 - cfg.ema)
        curves["eps MSE"].append(loss.item())
        if step % 50 == 0:
            bar.set_postfix(loss=f"{loss.item():.4f}")
    return ema.eval(), curves


def onnx_sampler(path: Path, betas, clip):
    """draw(n, labels, guidance, steps, sampler, seed) -> samples, running the ONNX denoiser."""
    sess = session(path)
    names = [i.name for i in sess.get_inputs()]

    def denoise(x_t, t, label):
        return sess.run(None, dict(zip(names, (x_t, t, label))))[0]

    def draw(n, labels=None, guidance=0.0, steps=None, sampler="ddpm", seed=0):
        gen = sample(betas, (n, 1, 8, 8), steps=steps, sampler=sampler, labels=labels,
                     null_label=NULL_LABEL, guidance=guidance, clip=clip, seed=seed)
        return run(gen, denoise)

    return draw


def main(cfg: Config, output: Path, version: int | None = None, quick: bool = False) -> Path:
    cfg = replace(cfg, **QUICK) if quick else cfg
    split = data.digits()
    spec = data.digits_spec(NETWORK_RANGE)
    betas = cosine_betas(cfg.timesteps)
    x_train = data.to_network(split.x_train, data.DIGITS_RAW_RANGE, NETWORK_RANGE)
    x_test = data.to_network(split.x_test, data.DIGITS_RAW_RANGE, NETWORK_RANGE)
    start = time.time()
    net, curves = train(cfg, x_train, split.y_train, betas, quick)
    training_time = time.time() - start

    rng = np.random.default_rng(cfg.seed)
    alpha_bar = np.cumprod(1 - betas)

    def inputs(kind: str, batch: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        t = rng.integers(0, cfg.timesteps, batch)
        label = rng.integers(0, NUM_CLASSES + 1, batch)
        if kind == "real":  # test digits noised to a random timestep, with their labels
            x0 = x_test[:batch]
            ab = alpha_bar[t].reshape(-1, 1, 1, 1)
            x_t = np.sqrt(ab) * x0 + np.sqrt(1 - ab) * rng.standard_normal(x0.shape)
            label = np.where(label == NULL_LABEL, NULL_LABEL, split.y_test[:batch])
        else:
            x_t = rng.standard_normal((batch, 1, 8, 8))
        return x_t.astype(np.float32), t.astype(np.int64), label.astype(np.int64)

    vdir = writer.version_dir(output, cfg.name, version)
    error = export_verified(net, vdir / "denoiser.onnx", ["x_t", "t", "label"], ["eps"], inputs)

    # The judge sees what the service will produce: the numpy sampler over the ONNX denoiser.
    draw = onnx_sampler(vdir / "denoiser.onnx", betas.tolist(), NETWORK_RANGE)
    n = generated.count(quick)
    asked = np.arange(n) % NUM_CLASSES
    unconditional = draw(n, seed=cfg.seed + 1)
    conditional = draw(n, labels=asked, guidance=cfg.guidance, seed=cfg.seed + 2)
    fast = draw(n, steps=cfg.default_steps, seed=cfg.seed + 3)
    metrics = {
        "judge_unconditional": {"sampler": f"ddpm, {cfg.timesteps} steps",
                                **generated.judge(output, unconditional, spec)},
        "judge_conditional": {"sampler": f"ddpm, {cfg.timesteps} steps, guidance "
                                         f"{cfg.guidance}, 100 samples per class",
                              **generated.judge(output, conditional, spec, asked)},
        "judge_unconditional_default_steps": {
            "sampler": f"ddpm, {cfg.default_steps} steps",
            **generated.judge(output, fast, spec)},
    }
    with torch.no_grad():  # the training loss on the test digits, for overfitting checks
        t = torch.from_numpy(rng.integers(0, cfg.timesteps, len(x_test)))
        eps = torch.from_numpy(rng.standard_normal(x_test.shape).astype(np.float32))
        ab = torch.from_numpy(alpha_bar[t.numpy()].astype(np.float32)).view(-1, 1, 1, 1)
        x_t = ab.sqrt() * torch.from_numpy(x_test) + (1 - ab).sqrt() * eps
        metrics["test_eps_mse"] = nn.functional.mse_loss(
            net(x_t, t, torch.full_like(t, NULL_LABEL)), eps).item()
    generated.grid(vdir, conditional, spec)  # asked cycles 0..9, so each grid row is one class
    writer.write_configs(vdir, {
        "task": "diffusion",
        "description": "Class-conditional DDPM of 8x8 handwritten digits (MLP denoiser, "
                       "classifier-free guidance).",
        "graphs": {"denoiser": "denoiser.onnx"},
        "labels": [str(i) for i in range(NUM_CLASSES)],
        "null_label": NULL_LABEL,
        "data": spec,
        "schedule": {"betas": betas.tolist()},
        "default_steps": cfg.default_steps,
        "max_steps": cfg.timesteps,
        "max_samples": 64,
    })
    writer.card(vdir, task="diffusion", family="diffusion (DDPM, classifier-free guidance)",
                dataset=split.card, metrics=metrics, parity={"denoiser.onnx": error},
                parameters=count_parameters(net), training_time_s=training_time, seed=cfg.seed,
                hyperparameters=asdict(cfg), quick=quick)
    writer.loss_png(vdir / "loss.png", curves)
    return vdir
