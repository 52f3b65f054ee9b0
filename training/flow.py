"""RealNVP normalizing flows: affine coupling layers on digits (D = 64) and on two moons (D = 2).

Dinh et al. 2017 (RealNVP); Prince, Understanding Deep Learning, ch. 16. The base distribution
is N(0, I). forward: x (B, *shape) -> z (B, D), log_det (B,) with log p(x) = log N(z) + log_det;
inverse: z (B, D) -> x (B, *shape). Both in network units, preprocessing included.

Digits are dequantized (Theis et al. 2016): pixel v in 0..16 becomes (v + u) / 17 with
u ~ U[0, 1), so integer pixels map to bin centres (v + 0.5) / 17: raw [0, 16] -> network
[1/34, 33/34].
"""

import math
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from training import data, generated, writer
from training.export import count_parameters, export_verified

LEVELS = 17  # digits pixels take the values 0..16
DIGITS_NETWORK_RANGE = (0.5 / LEVELS, 16.5 / LEVELS)
LOGIT_ALPHA = 0.05  # Dinh et al. 2017, sec. 4.1: logit(alpha + (1 - 2 alpha) x)
TRAIN_CURVE, VAL_CURVE = "-log p(x) train (nats/sample)", "-log p(x) val (nats/sample)"


@dataclass
class Config:
    name: str
    dataset: str  # "digits" or "moons"
    couplings: int
    hidden: int
    steps: int
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 1e-5
    eval_every: int = 100  # steps between validation NLLs; the best validation weights ship
    seed: int = 0


# --quick (tests) proves the pipeline, not the model: one coupling each way, narrow nets. An
# export costs per traced op, and it is most of a quick run.
QUICK = {"couplings": 2, "hidden": 16}


CONFIGS = {
    # 1,257 training digits: the validation NLL bottoms out after ~500 steps, then climbs fast.
    "digits-flow": Config("digits-flow", "digits", couplings=12, hidden=64, steps=2000),
    "moons-flow": Config("moons-flow", "moons", couplings=8, hidden=64, steps=4000),
}


class Logit(nn.Module):
    """[0, 1] pixels -> R: y = logit(alpha + (1 - 2 alpha) x), with its log |dy/dx|."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        p = LOGIT_ALPHA + (1 - 2 * LOGIT_ALPHA) * x  # (B, D)
        log_det = (math.log(1 - 2 * LOGIT_ALPHA) - torch.log(p) - torch.log1p(-p)).sum(1)
        return torch.log(p) - torch.log1p(-p), log_det

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        return (torch.sigmoid(y) - LOGIT_ALPHA) / (1 - 2 * LOGIT_ALPHA)


class Standardise(nn.Module):
    """y = (x - mean) / std with fixed training statistics; log |dy/dx| = -sum log std."""

    def __init__(self, mean: np.ndarray, std: np.ndarray):
        super().__init__()
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        log_det = -torch.log(self.std).sum().expand(x.shape[0])  # (B,)
        return (x - self.mean) / self.std, log_det

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        return y * self.std + self.mean


class Coupling(nn.Module):
    """y = m*x + (1-m)*(x*exp(s(m*x)) + t(m*x))  (Dinh et al. 2017, eq. 9); log_det = sum s."""

    def __init__(self, mask: torch.Tensor, hidden: int):
        super().__init__()
        d = mask.numel()
        self.register_buffer("mask", mask.float())  # (D,), 1 = passed through
        self.net = nn.Sequential(
            nn.Linear(d, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
            nn.Linear(hidden, 2 * d),
        )
        nn.init.zeros_(self.net[-1].weight)  # start as the identity
        nn.init.zeros_(self.net[-1].bias)
        self.scale = nn.Parameter(torch.ones(d))  # s = scale * tanh(.) keeps exp(s) bounded

    def _s_t(self, x_masked: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s, t = self.net(x_masked).chunk(2, dim=1)  # (B, D) each
        free = 1 - self.mask
        return self.scale * torch.tanh(s) * free, t * free

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s, t = self._s_t(x * self.mask)
        return x * torch.exp(s) + t, s.sum(1)  # masked dims: s = t = 0, unchanged

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        s, t = self._s_t(y * self.mask)  # the masked half of y is the masked half of x
        return (y - t) * torch.exp(-s)


class RealNVP(nn.Module):
    """A fixed preprocessing bijection, then affine couplings with alternating masks."""

    def __init__(self, shape: tuple[int, ...], pre: nn.Module, masks: list[torch.Tensor],
                 hidden: int):
        super().__init__()
        self.shape = shape
        self.pre = pre
        self.layers = nn.ModuleList(Coupling(m, hidden) for m in masks)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h, log_det = self.pre(x.flatten(1))  # (B, *shape) -> (B, D), (B,)
        for layer in self.layers:
            h, ld = layer(h)
            log_det = log_det + ld
        return h, log_det

    def inverse(self, z: torch.Tensor) -> torch.Tensor:
        for layer in reversed(self.layers):
            z = layer.inverse(z)
        return self.pre.inverse(z).view(-1, *self.shape)  # (B, D) -> (B, *shape)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log p(x) = log N(z; 0, I) + log |det dz/dx|  (change of variables, Prince eq. 16.3)."""
        z, log_det = self(x)
        return -0.5 * (z**2).sum(1) - 0.5 * z.shape[1] * math.log(2 * math.pi) + log_det


class Forward(nn.Module):
    def __init__(self, flow: RealNVP):
        super().__init__()
        self.flow = flow

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.flow(x)


class Inverse(nn.Module):
    def __init__(self, flow: RealNVP):
        super().__init__()
        self.flow = flow

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.flow.inverse(z)


def digit_masks(count: int, seed: int) -> list[torch.Tensor]:
    """Checkerboard and random halves of the 64 pixels, each followed by its complement."""
    gen = torch.Generator().manual_seed(seed)
    checker = ((torch.arange(8)[:, None] + torch.arange(8)[None]) % 2).flatten()  # (64,)
    masks = []
    for k in range(0, count, 2):
        m = checker if k % 4 == 0 else (torch.randperm(64, generator=gen) < 32).long()
        masks += [m, 1 - m]
    return masks[:count]


def build(cfg: Config, x_train: np.ndarray) -> RealNVP:
    if cfg.dataset == "digits":
        return RealNVP((1, 8, 8), Logit(), digit_masks(cfg.couplings, cfg.seed), cfg.hidden)
    masks = [torch.tensor([1, 0]) if k % 2 == 0 else torch.tensor([0, 1])
             for k in range(cfg.couplings)]
    return RealNVP((2,), Standardise(x_train.mean(0), x_train.std(0)), masks, cfg.hidden)


def dequantize(raw: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Integer pixels 0..16 -> (v + u) / 17 in [0, 1), u ~ U[0, 1)."""
    return (raw + torch.rand(raw.shape, generator=gen)) / LEVELS


def train(cfg: Config, x_train: np.ndarray, x_val: np.ndarray, quick: bool):
    """Maximum likelihood: minimise -log p(x) over minibatches, AdamW with cosine decay.

    Keeps the weights of the best validation NLL (early stopping): flows overfit small sets.
    """
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    flow = build(cfg, x_train)
    x = torch.from_numpy(x_train)  # digits: raw 0..16 (N, 1, 8, 8); moons: (N, 2)
    x_val_t = torch.from_numpy(x_val)
    if cfg.dataset == "digits":  # one fixed dequantization of the validation digits
        x_val_t = dequantize(x_val_t, torch.Generator().manual_seed(cfg.seed + 1))
    opt = torch.optim.AdamW(flow.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps = 20 if quick else cfg.steps
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    curves: dict[str, list[float]] = {TRAIN_CURVE: [], VAL_CURVE: []}
    best = (math.inf, None, 0)
    val = math.inf
    bar = tqdm(range(steps), desc=cfg.name)
    for step in bar:
        xb = x[torch.randint(0, len(x), (cfg.batch_size,), generator=gen)]
        if cfg.dataset == "digits":
            xb = dequantize(xb, gen)  # (B, 1, 8, 8) in [0, 1)
        loss = -flow.log_prob(xb).mean()
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(flow.parameters(), 100.0)
        opt.step()
        sched.step()
        curves[TRAIN_CURVE].append(loss.item())
        if (step + 1) % min(cfg.eval_every, steps) == 0:
            flow.eval()
            with torch.no_grad():
                val = -flow.log_prob(x_val_t).mean().item()
            flow.train()
            curves[VAL_CURVE].append(val)
            if val < best[0]:
                best = (val, {k: v.clone() for k, v in flow.state_dict().items()}, step + 1)
        if step % 50 == 0:
            bar.set_postfix(loss=f"{loss.item():.3f}", val=f"{val:.3f}")
    flow.load_state_dict(best[1])
    curves["best_step"] = best[2]
    return flow.eval(), curves


def digit_metrics(flow: RealNVP, x_test_raw: np.ndarray, seed: int, draws: int = 4) -> dict:
    """Test NLL in bits per pixel (discrete, 17 levels) and density comparisons."""
    gen = torch.Generator().manual_seed(seed)
    raw = torch.from_numpy(x_test_raw)
    d = raw[0].numel()
    with torch.no_grad():
        log_p = torch.stack([flow.log_prob(dequantize(raw, gen)) for _ in range(draws)]).mean()
        # log P(v) >= E_u log p_net((v + u) / 17) - D log 17  (bins of width 1/17 in network units)
        bits = -(log_p.item() - d * math.log(LEVELS)) / (d * math.log(2))
    comparison = density_comparison(
        lambda x: flow.log_prob(torch.from_numpy(x)).detach().numpy(), x_test_raw, seed)
    return {"test_nll_bits_per_dim": bits, "uniform_bits_per_dim": math.log2(LEVELS),
            "dequantization_draws": draws, "density_comparison": comparison}


def density_comparison(log_prob, x_test_raw: np.ndarray, seed: int) -> dict:
    """Share of test digits whose log-density beats uniform noise and their own shuffled pixels.

    The same recipe runs in tests on the ONNX graph: keep it numpy in, numpy out.
    """
    rng = np.random.default_rng(seed)
    n = len(x_test_raw)
    real = data.to_network(x_test_raw, data.DIGITS_RAW_RANGE, DIGITS_NETWORK_RANGE)
    noise = data.to_network(rng.uniform(0, 16, size=x_test_raw.shape),
                            data.DIGITS_RAW_RANGE, DIGITS_NETWORK_RANGE)
    flat = real.reshape(n, -1)
    shuffled = np.stack([row[rng.permutation(flat.shape[1])] for row in flat]).reshape(real.shape)
    lp_real, lp_noise, lp_shuf = log_prob(real), log_prob(noise), log_prob(shuffled)
    return {
        "real_over_noise": float(np.mean(lp_real > lp_noise)),
        "real_over_shuffled": float(np.mean(lp_real > lp_shuf)),
        "real_over_both": float(np.mean((lp_real > lp_noise) & (lp_real > lp_shuf))),
        "mean_log_density": {"real": float(lp_real.mean()), "noise": float(lp_noise.mean()),
                             "shuffled": float(lp_shuf.mean())},
        "units": "log-density in network units, bin centres (v + 0.5) / 17",
    }


def main(cfg: Config, output: Path, version: int | None = None, quick: bool = False) -> Path:
    cfg = replace(cfg, **QUICK) if quick else cfg
    split = data.digits() if cfg.dataset == "digits" else data.moons()
    start = time.time()
    flow, curves = train(cfg, split.x_train, split.x_val, quick)
    training_time = time.time() - start
    best_step = curves.pop("best_step")

    if cfg.dataset == "digits":
        spec = data.digits_spec(DIGITS_NETWORK_RANGE)
        x_real = data.to_network(split.x_test, data.DIGITS_RAW_RANGE, DIGITS_NETWORK_RANGE)
    else:
        spec = {"shape": [2]}
        x_real = split.x_test
    dim = int(np.prod(spec["shape"]))
    rng = np.random.default_rng(cfg.seed)

    def forward_inputs(kind: str, batch: int) -> tuple[np.ndarray]:
        if kind == "real":
            return (np.resize(x_real, (batch, *spec["shape"])),)
        if cfg.dataset == "digits":
            return (rng.uniform(0, 1, size=(batch, *spec["shape"])).astype(np.float32),)
        low, high = split.x_train.min(0), split.x_train.max(0)  # the data's bounding box
        return (rng.uniform(low, high, size=(batch, 2)).astype(np.float32),)

    def inverse_inputs(kind: str, batch: int) -> tuple[np.ndarray]:
        if kind == "real":  # the latent codes of real test points
            with torch.no_grad():
                return (flow(torch.from_numpy(forward_inputs("real", batch)[0]))[0].numpy(),)
        return (rng.standard_normal((batch, dim)).astype(np.float32),)

    vdir = writer.version_dir(output, cfg.name, version)
    fwd, inv = Forward(flow), Inverse(flow)
    parity = {
        "forward.onnx": export_verified(fwd, vdir / "forward.onnx", ["x"], ["z", "log_det"],
                                        forward_inputs),
        "inverse.onnx": export_verified(inv, vdir / "inverse.onnx", ["z"], ["x"], inverse_inputs),
    }

    z = np.random.default_rng(cfg.seed + 1).standard_normal(
        (generated.count(quick), dim)).astype(np.float32)
    with torch.no_grad():
        samples = inv(torch.from_numpy(z)).numpy()  # (1000, *shape)
        z_test, _ = flow(torch.from_numpy(x_real))
    # A round trip through both directions: inverse(forward(x)) should give x back.
    round_trip = float(np.max(np.abs(inv(z_test).detach().numpy() - x_real)))
    if cfg.dataset == "digits":
        metrics = {"test": digit_metrics(flow, split.x_test, cfg.seed),
                   "judge": generated.judge(output, samples, spec)}
        generated.grid(vdir, samples, spec)
        description = "RealNVP flow over 8x8 handwritten digits: exact log-density and samples."
    else:
        with torch.no_grad():
            nll = -flow.log_prob(torch.from_numpy(x_real)).mean().item()
        metrics = {"test_nll_nats_per_point": nll}
        grid_x, grid_y = np.meshgrid(np.linspace(-1.5, 2.5, 100), np.linspace(-1.0, 1.5, 100))
        points = np.stack([grid_x.ravel(), grid_y.ravel()], 1).astype(np.float32)
        with torch.no_grad():
            density = flow.log_prob(torch.from_numpy(points)).exp().numpy().reshape(100, 100)
        writer.scatter_png(vdir / "samples.png", {"samples": samples[:500]}, density)
        description = "RealNVP flow over scikit-learn's two moons: density and samples in 2-D."
    metrics["round_trip_max_abs_error"] = round_trip
    metrics["early_stopping"] = {"best_step": best_step, "of": len(curves[TRAIN_CURVE]),
                                 "best_val_nll_nats": min(curves[VAL_CURVE])}
    writer.write_configs(vdir, {
        "task": "flow",
        "description": description,
        "graphs": {"forward": "forward.onnx", "inverse": "inverse.onnx"},
        "data": spec,
        "max_samples": 64,
    })
    writer.card(vdir, task="flow", family="normalizing flow (RealNVP affine couplings)",
                dataset=split.card, metrics=metrics, parity=parity,
                parameters=count_parameters(flow), training_time_s=training_time, seed=cfg.seed,
                hyperparameters=asdict(cfg), quick=quick)
    writer.loss_png(vdir / "loss.png", curves)
    return vdir

