"""A GAN on digits: an MLP generator against an MLP discriminator; only the generator ships.

Goodfellow et al. 2014; Prince, Understanding Deep Learning, ch. 15. The exported graph maps
z (B, latent_dim) ~ N(0, I) to images x (B, 1, 8, 8) in network units [-1, 1].
"""

import copy
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from training import data, generated, writer
from training.export import count_parameters, export_verified

NETWORK_RANGE = (-1.0, 1.0)


@dataclass
class Config:
    name: str = "digits-gan"
    latent_dim: int = 32
    hidden: int = 256
    steps: int = 12000
    batch_size: int = 128
    lr: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)  # Radford et al. 2016 (DCGAN)
    ema: float = 0.999  # generator weights averaged over steps (Yazici et al. 2019)
    seed: int = 0


# --quick (tests) proves the pipeline, not the model: narrow nets. An export costs per traced op,
# and it is most of a quick run.
QUICK = {"hidden": 32}


class Generator(nn.Module):
    def __init__(self, latent_dim: int, hidden: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(latent_dim, hidden), nn.LeakyReLU(0.2),
            nn.Linear(hidden, hidden), nn.LeakyReLU(0.2),
            nn.Linear(hidden, 64), nn.Tanh(),  # pixels in [-1, 1]
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).view(-1, 1, 8, 8)  # (B, latent) -> (B, 1, 8, 8)


class Discriminator(nn.Module):
    def __init__(self, hidden: int):
        super().__init__()
        sn = nn.utils.parametrizations.spectral_norm  # Lipschitz control (Miyato et al. 2018)
        self.net = nn.Sequential(
            nn.Flatten(),
            sn(nn.Linear(64, hidden)), nn.LeakyReLU(0.2),
            sn(nn.Linear(hidden, hidden)), nn.LeakyReLU(0.2),
            sn(nn.Linear(hidden, 1)),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(1)  # (B, 1, 8, 8) -> (B,) logit of "real"


def train(cfg: Config, x_train: np.ndarray, quick: bool):
    """Non-saturating GAN loss (Goodfellow et al. 2014, sec. 3); returns the EMA generator."""
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    x = torch.from_numpy(x_train)  # (N, 1, 8, 8) in [-1, 1]
    g, d = Generator(cfg.latent_dim, cfg.hidden), Discriminator(cfg.hidden)
    g_ema = copy.deepcopy(g).requires_grad_(False)
    opt_g = torch.optim.Adam(g.parameters(), lr=cfg.lr, betas=cfg.betas)
    opt_d = torch.optim.Adam(d.parameters(), lr=cfg.lr, betas=cfg.betas)
    bce = nn.functional.binary_cross_entropy_with_logits
    curves: dict[str, list[float]] = {"discriminator": [], "generator": []}
    steps = 20 if quick else cfg.steps
    bar = tqdm(range(steps), desc=cfg.name)
    for step in bar:
        real = x[torch.randint(0, len(x), (cfg.batch_size,), generator=gen)]  # (B, 1, 8, 8)
        z = torch.randn(cfg.batch_size, cfg.latent_dim, generator=gen)  # (B, latent)
        fake = g(z)
        # D maximises log D(x) + log(1 - D(G(z)))
        logit_real, logit_fake = d(real), d(fake.detach())
        loss_d = bce(logit_real, torch.ones_like(logit_real)) + bce(
            logit_fake, torch.zeros_like(logit_fake))
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()
        # G maximises log D(G(z)) (the non-saturating form of minimising log(1 - D(G(z))))
        logit_fake = d(fake)
        loss_g = bce(logit_fake, torch.ones_like(logit_fake))
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()
        with torch.no_grad():
            for pe, p in zip(g_ema.parameters(), g.parameters()):
                pe.lerp_(p, 1.0 - cfg.ema)
        curves["discriminator"].append(loss_d.item())
        curves["generator"].append(loss_g.item())
        if step % 50 == 0:
            bar.set_postfix(d=f"{loss_d.item():.3f}", g=f"{loss_g.item():.3f}")
    return g_ema.eval(), d.eval(), curves


def main(cfg: Config, output: Path, version: int | None = None, quick: bool = False) -> Path:
    cfg = replace(cfg, **QUICK) if quick else cfg
    split = data.digits()
    spec = data.digits_spec(NETWORK_RANGE)
    x_train = data.to_network(split.x_train, data.DIGITS_RAW_RANGE, NETWORK_RANGE)
    start = time.time()
    g, d, curves = train(cfg, x_train, quick)
    training_time = time.time() - start

    rng = np.random.default_rng(cfg.seed)

    def inputs(kind: str, batch: int) -> tuple[np.ndarray]:
        # No "real" latent exists: both kinds are N(0, I) draws, the second at 3x the scale.
        scale = 1.0 if kind == "real" else 3.0
        return (scale * rng.standard_normal((batch, cfg.latent_dim)).astype(np.float32),)

    vdir = writer.version_dir(output, cfg.name, version)
    error = export_verified(g, vdir / "generator.onnx", ["z"], ["x"], inputs)

    z = np.random.default_rng(cfg.seed + 1).standard_normal(
        (generated.count(quick), cfg.latent_dim)).astype(np.float32)
    with torch.no_grad():
        samples = g(torch.from_numpy(z)).numpy()  # (1000, 1, 8, 8)
    metrics = {"judge": generated.judge(output, samples, spec)}
    generated.grid(vdir, samples, spec)
    writer.write_configs(vdir, {
        "task": "gan",
        "description": "GAN generator of 8x8 handwritten digits (MLP, non-saturating loss).",
        "graphs": {"generator": "generator.onnx"},
        "latent_dim": cfg.latent_dim,
        "data": spec,
        "max_samples": 64,
    })
    writer.card(vdir, task="gan", family="GAN (generator exported; discriminator "
                f"{count_parameters(d)} parameters, not exported)", dataset=split.card,
                metrics=metrics, parity={"generator.onnx": error},
                parameters=count_parameters(g), training_time_s=training_time, seed=cfg.seed,
                hyperparameters=asdict(cfg), quick=quick)
    writer.loss_png(vdir / "loss.png", curves)
    return vdir
