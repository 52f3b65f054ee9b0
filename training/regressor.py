"""Diabetes progression: an MLP that predicts a Gaussian, mean and variance, per patient.

Prince, Understanding Deep Learning, ch. 5.3 (regression as maximum likelihood of a normal
distribution) and heteroscedastic regression (Nix & Weigend 1994). The graph takes the ten
raw features (age in years, bmi, blood pressure...) and returns mean (B, 1) and variance (B, 1)
in raw target units: feature standardisation and target scaling are baked into it.
"""

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from training import data, writer
from training.export import count_parameters, export_verified


@dataclass
class Config:
    name: str = "diabetes-regressor"
    hidden: int = 16  # 16 vs 32 chosen on validation NLL
    epochs: int = 400  # at most: training stops `patience` epochs after the best validation NLL
    patience: int = 50
    batch_size: int = 32
    lr: float = 3e-3
    weight_decay: float = 1e-2
    seed: int = 0


class GaussianMLP(nn.Module):
    """Raw features (B, 10) -> mean (B, 1), variance (B, 1), both in raw target units."""

    def __init__(self, hidden: int, x_mean, x_std, y_mean: float, y_std: float):
        super().__init__()
        self.register_buffer("x_mean", torch.as_tensor(x_mean, dtype=torch.float32))  # (10,)
        self.register_buffer("x_std", torch.as_tensor(x_std, dtype=torch.float32))  # (10,)
        self.register_buffer("y_mean", torch.tensor(float(y_mean)))
        self.register_buffer("y_std", torch.tensor(float(y_std)))
        self.net = nn.Sequential(
            nn.Linear(10, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
            nn.Linear(hidden, 2),
        )
        # A linear path beside the MLP for the mean (a residual connection, Prince ch. 11):
        # on 309 training patients most of the signal is linear, and the MLP learns the rest.
        self.linear = nn.Linear(10, 1)

    def standardised(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and variance in standardised target units, for the loss."""
        z = (x - self.x_mean) / self.x_std  # (B, 10)
        out = self.net(z)  # (B, 2)
        mean = out[:, :1] + self.linear(z)  # (B, 1)
        var = nn.functional.softplus(out[:, 1:]) + 1e-4  # (B, 1), > 0
        return mean, var

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, var = self.standardised(x)
        return mean * self.y_std + self.y_mean, var * self.y_std**2  # raw units


def gaussian_nll(mean, var, y) -> torch.Tensor:
    """-log N(y; mean, var) = 0.5 log(2 pi var) + (y - mean)^2 / (2 var)  (Prince eq. 5.11)."""
    return (0.5 * torch.log(2 * math.pi * var) + (y - mean) ** 2 / (2 * var)).mean()


def train(cfg: Config, split: data.Split, quick: bool):
    """Gaussian NLL with AdamW; keep the weights of the best validation NLL (early stopping).

    Past the best epoch the network fits the 308 training patients ever closer and shrinks its
    variance there: training NLL keeps falling while validation NLL climbs, by tens of nats
    where a confident mean misses. Returns the net, the curves and which epoch was kept.
    """
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    net = GaussianMLP(cfg.hidden, split.x_train.mean(0), split.x_train.std(0),
                      split.y_train.mean(), split.y_train.std())
    x, y = torch.from_numpy(split.x_train), torch.from_numpy(split.y_train)[:, None]  # (N,10),(N,1)
    x_val, y_val = torch.from_numpy(split.x_val), torch.from_numpy(split.y_val)[:, None]
    scale = lambda t: (t - net.y_mean) / net.y_std  # target in standardised units
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    epochs = 2 if quick else cfg.epochs
    curves: dict[str, list[float]] = {"train NLL (standardised)": [], "val NLL (standardised)": []}
    best = (math.inf, None, -1)  # validation NLL, weights, epoch
    bar = tqdm(range(epochs), desc=cfg.name)
    for epoch in bar:
        net.train()
        order = torch.randperm(len(x), generator=gen)
        losses = []
        for i in range(0, len(x), cfg.batch_size):
            idx = order[i:i + cfg.batch_size]
            loss = gaussian_nll(*net.standardised(x[idx]), scale(y[idx]))
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        net.eval()
        with torch.no_grad():
            val = gaussian_nll(*net.standardised(x_val), scale(y_val)).item()
        curves["train NLL (standardised)"].append(float(np.mean(losses)))
        curves["val NLL (standardised)"].append(val)
        if val < best[0]:
            best = (val, {k: v.clone() for k, v in net.state_dict().items()}, epoch)
        bar.set_postfix(loss=f"{np.mean(losses):.3f}", val=f"{val:.3f}")
        if epoch - best[2] >= cfg.patience:
            break
    net.load_state_dict(best[1])
    # As the flows' cards: which epoch was kept, of how many, and why (the card is the record).
    selection = {
        "best_epoch": best[2] + 1,  # counted from 1, as the chart's x axis
        "of": epoch + 1,
        "best_val_nll_standardised": best[0],
        "rule": f"the weights of the epoch with the lowest validation NLL; training stops "
                f"{cfg.patience} epochs after it. Later epochs fit the training patients ever "
                f"closer and shrink the predicted variance there, so training NLL falls while "
                f"validation NLL rises: those weights are never kept.",
    }
    return net.eval(), curves, selection


def evaluate(mean: np.ndarray, var: np.ndarray, y: np.ndarray) -> dict:
    """R², RMSE, NLL (nats per patient) and the share of targets within 1 and 2 predicted std."""
    mean, var = mean.ravel().astype(np.float64), var.ravel().astype(np.float64)
    std = np.sqrt(var)
    residual = y - mean
    return {
        "r2": float(1 - np.sum(residual**2) / np.sum((y - y.mean()) ** 2)),
        "rmse": float(np.sqrt(np.mean(residual**2))),
        "nll": float(np.mean(0.5 * np.log(2 * np.pi * var) + residual**2 / (2 * var))),
        "within_1_std": float(np.mean(np.abs(residual) <= std)),
        "within_2_std": float(np.mean(np.abs(residual) <= 2 * std)),
    }


def main(cfg: Config, output: Path, version: int | None = None, quick: bool = False) -> Path:
    split = data.diabetes()
    start = time.time()
    net, curves, selection = train(cfg, split, quick)
    training_time = time.time() - start

    rng = np.random.default_rng(cfg.seed)
    x_test = split.x_test  # (N, 10) raw units

    def inputs(kind: str, batch: int) -> tuple[np.ndarray]:
        if kind == "real":
            return (np.resize(x_test, (batch, 10)),)  # 89 test patients, repeated to fill 64+
        low, high = split.x_train.min(0), split.x_train.max(0)
        return (rng.uniform(low, high, size=(batch, 10)).astype(np.float32),)

    vdir = writer.version_dir(output, cfg.name, version)
    error = export_verified(net, vdir / "model.onnx", ["x"], ["mean", "variance"], inputs)

    with torch.no_grad():
        mean, var = net(torch.from_numpy(x_test))
    metrics = {"test": evaluate(mean.numpy(), var.numpy(), split.y_test),
               "early_stopping": selection}
    # Baseline: predicting the training mean for everyone, so R² and RMSE can be read.
    metrics["test_rmse_of_training_mean"] = float(
        np.sqrt(np.mean((split.y_test - split.y_train.mean()) ** 2)))
    writer.write_configs(vdir, {
        "task": "regression",
        "description": "Diabetes progression one year after baseline (mean and variance) "
                       "from ten raw clinical features.",
        "graphs": {"model": "model.onnx"},
        "features": split.card["features"],
        "data": {"shape": [10]},
    })
    # A real patient and the training ranges, so a form (the playground's sliders) can start
    # somewhere meaningful: test patient 0, in raw units.
    features = split.card["features"]
    dataset = {
        **split.card,
        "example": dict(zip(features, split.x_test[0].astype(float).tolist())),
        "feature_ranges": {n: [float(lo), float(hi)] for n, lo, hi in
                           zip(features, split.x_train.min(0), split.x_train.max(0))},
    }
    writer.card(vdir, task="regression", family="regressor: Gaussian MLP (mean and variance)",
                dataset=dataset, metrics=metrics, parity={"model.onnx": error},
                parameters=count_parameters(net), training_time_s=training_time, seed=cfg.seed,
                hyperparameters=asdict(cfg), quick=quick)
    writer.loss_png(vdir / "loss.png", curves, x_label="epoch",
                    mark=(selection["best_epoch"] - 1, f"kept: epoch {selection['best_epoch']}"))
    return vdir
