"""A variational autoencoder on digits: MLP encoder q(z|x) and decoder p(x|z), both exported.

Kingma & Welling 2014; Prince, Understanding Deep Learning, ch. 17. Pixels in network units
[0, 1] are modelled as Bernoulli probabilities (as pytorch/examples' VAE does for MNIST).
encoder: x (B, 1, 8, 8) -> mean, log_var (B, latent_dim); decoder: z (B, latent_dim) -> x.
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

NETWORK_RANGE = (0.0, 1.0)


@dataclass
class Config:
    name: str = "digits-vae"
    latent_dim: int = 8
    hidden: int = 256
    epochs: int = 300
    batch_size: int = 64
    lr: float = 1e-3
    seed: int = 0


# --quick (tests) proves the pipeline, not the model: narrow nets. An export costs per traced op,
# and it is most of a quick run.
QUICK = {"hidden": 32}


class Encoder(nn.Module):
    def __init__(self, latent_dim: int, hidden: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Flatten(), nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
            nn.Linear(hidden, 2 * latent_dim),
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_var = self.net(x).chunk(2, dim=1)  # (B, 1, 8, 8) -> 2 x (B, latent)
        return mean, log_var


class Decoder(nn.Module):
    def __init__(self, latent_dim: int, hidden: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(latent_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
            nn.Linear(hidden, 64),
        )

    def logits(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).view(-1, 1, 8, 8)  # (B, latent) -> (B, 1, 8, 8) Bernoulli logits

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logits(z))  # pixel means in [0, 1]


def negative_elbo(enc: Encoder, dec: Decoder, x: torch.Tensor, noise: torch.Tensor):
    """-ELBO per image (nats): reconstruction -log p(x|z) plus KL(q(z|x) || N(0, I))."""
    mean, log_var = enc(x)  # (B, latent)
    z = mean + torch.exp(0.5 * log_var) * noise  # reparameterisation (Kingma & Welling, eq. 10)
    recon = nn.functional.binary_cross_entropy_with_logits(
        dec.logits(z), x, reduction="none").sum(dim=(1, 2, 3))  # (B,)
    # KL of two Gaussians in closed form (Kingma & Welling, appendix B)
    kl = -0.5 * torch.sum(1 + log_var - mean**2 - log_var.exp(), dim=1)  # (B,)
    return recon, kl


def train(cfg: Config, x_train: np.ndarray, quick: bool):
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    x = torch.from_numpy(x_train)  # (N, 1, 8, 8) in [0, 1]
    enc, dec = Encoder(cfg.latent_dim, cfg.hidden), Decoder(cfg.latent_dim, cfg.hidden)
    opt = torch.optim.Adam([*enc.parameters(), *dec.parameters()], lr=cfg.lr)
    epochs = 1 if quick else cfg.epochs
    curves: dict[str, list[float]] = {"-ELBO (nats/image)": [], "KL": []}
    bar = tqdm(range(epochs), desc=cfg.name)
    for _ in bar:
        order = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), cfg.batch_size):
            xb = x[order[i:i + cfg.batch_size]]
            noise = torch.randn(len(xb), cfg.latent_dim, generator=gen)
            recon, kl = negative_elbo(enc, dec, xb, noise)
            loss = (recon + kl).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            curves["-ELBO (nats/image)"].append(loss.item())
            curves["KL"].append(kl.mean().item())
        bar.set_postfix(loss=f"{loss.item():.2f}", kl=f"{kl.mean().item():.2f}")
    return enc.eval(), dec.eval(), curves


def test_elbo(enc, dec, x: np.ndarray, latent_dim: int, seed: int, draws: int = 10) -> dict:
    """ELBO per test image, averaged over `draws` samples of z per image."""
    gen = torch.Generator().manual_seed(seed)
    x_t = torch.from_numpy(x)
    with torch.no_grad():
        parts = [negative_elbo(enc, dec, x_t, torch.randn(len(x), latent_dim, generator=gen))
                 for _ in range(draws)]
    recon = torch.stack([p[0] for p in parts]).mean().item()
    kl = torch.stack([p[1] for p in parts]).mean().item()
    return {"elbo_nats_per_image": -(recon + kl), "reconstruction_nats": recon, "kl_nats": kl,
            "negative_elbo_bits_per_dim": (recon + kl) / (64 * math.log(2)), "z_draws": draws,
            "likelihood": "Bernoulli on pixel intensities raw/16 in [0, 1]"}


def main(cfg: Config, output: Path, version: int | None = None, quick: bool = False) -> Path:
    cfg = replace(cfg, **QUICK) if quick else cfg
    split = data.digits()
    spec = data.digits_spec(NETWORK_RANGE)
    x_train = data.to_network(split.x_train, data.DIGITS_RAW_RANGE, NETWORK_RANGE)
    x_test = data.to_network(split.x_test, data.DIGITS_RAW_RANGE, NETWORK_RANGE)
    start = time.time()
    enc, dec, curves = train(cfg, x_train, quick)
    training_time = time.time() - start

    rng = np.random.default_rng(cfg.seed)

    def encoder_inputs(kind: str, batch: int) -> tuple[np.ndarray]:
        if kind == "real":
            return (x_test[:batch],)
        return (rng.uniform(*NETWORK_RANGE, size=(batch, 1, 8, 8)).astype(np.float32),)

    def decoder_inputs(kind: str, batch: int) -> tuple[np.ndarray]:
        if kind == "real":  # the latent codes of real test digits
            with torch.no_grad():
                return (enc(torch.from_numpy(x_test[:batch]))[0].numpy(),)
        return (rng.standard_normal((batch, cfg.latent_dim)).astype(np.float32),)

    vdir = writer.version_dir(output, cfg.name, version)
    parity = {
        "encoder.onnx": export_verified(enc, vdir / "encoder.onnx", ["x"], ["mean", "log_var"],
                                        encoder_inputs),
        "decoder.onnx": export_verified(dec, vdir / "decoder.onnx", ["z"], ["x"],
                                        decoder_inputs),
    }

    z = np.random.default_rng(cfg.seed + 1).standard_normal(
        (generated.count(quick), cfg.latent_dim)).astype(np.float32)
    with torch.no_grad():
        samples = dec(torch.from_numpy(z)).numpy()  # (1000, 1, 8, 8) pixel means
    metrics = {"test": test_elbo(enc, dec, x_test, cfg.latent_dim, cfg.seed),
               "judge": generated.judge(output, samples, spec)}
    generated.grid(vdir, samples, spec)
    writer.write_configs(vdir, {
        "task": "vae",
        "description": "Variational autoencoder of 8x8 handwritten digits (MLP encoder/decoder).",
        "graphs": {"encoder": "encoder.onnx", "decoder": "decoder.onnx"},
        "latent_dim": cfg.latent_dim,
        "data": spec,
        "max_samples": 64,
    })
    writer.card(vdir, task="vae", family="VAE (encoder and decoder exported)", dataset=split.card,
                metrics=metrics, parity=parity, parameters=count_parameters(enc, dec),
                training_time_s=training_time, seed=cfg.seed, hyperparameters=asdict(cfg),
                quick=quick)
    writer.loss_png(vdir / "loss.png", curves)
    return vdir
