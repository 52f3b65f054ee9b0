"""Digit classifiers: a shallow MLP, a deep MLP of about the same size, and a small convnet.

Prince, Understanding Deep Learning, ch. 4 (shallow vs deep) and ch. 10 (convolutions).
The graph takes one (B, 1, 8, 8) image in network units [0, 1] and returns logits (B, 10).
"""

import itertools
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from training import data, writer
from training.export import count_parameters, export_verified
from training.judge import latest_version

NETWORK_RANGE = (0.0, 1.0)


@dataclass
class Config:
    name: str
    arch: str  # "mlp" or "cnn"
    hidden: tuple[int, ...] = (128,)  # mlp: widths of the hidden layers
    epochs: int = 60
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 1e-4
    shift: bool = False  # augment by random shifts of up to one pixel
    seed: int = 0


CONFIGS = {
    # 64*128+128 + 128*10+10 = 9,610 parameters
    "digits-shallow": Config("digits-shallow", "mlp", hidden=(128,)),
    # 64*53+53 + 2*(53*53+53) + 53*10+10 = 9,709 parameters: the same budget, spent on depth
    "digits-deep": Config("digits-deep", "mlp", hidden=(53, 53, 53)),
    "digits-cnn": Config("digits-cnn", "cnn", epochs=100, shift=True),
}
PEER = {"digits-shallow": "digits-deep", "digits-deep": "digits-shallow"}


class MLP(nn.Module):
    def __init__(self, hidden: tuple[int, ...]):
        super().__init__()
        widths = (64, *hidden)
        layers: list[nn.Module] = [nn.Flatten()]  # (B, 1, 8, 8) -> (B, 64)
        for a, b in itertools.pairwise(widths):
            layers += [nn.Linear(a, b), nn.ReLU()]
        layers.append(nn.Linear(widths[-1], 10))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # (B, 10) logits


class ConvNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(),  # (B, 32, 8, 8)
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(),  # (B, 64, 8, 8)
            nn.MaxPool2d(2),  # (B, 64, 4, 4)
            nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(),  # (B, 64, 4, 4)
            nn.MaxPool2d(2),  # (B, 64, 2, 2)
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(0.3), nn.Linear(256, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))  # (B, 10) logits


def random_shift(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Shift each image by -1..1 pixels in each direction, filling with background (0)."""
    b = x.shape[0]
    padded = nn.functional.pad(x, (1, 1, 1, 1))  # (B, 1, 10, 10)
    dy, dx = torch.randint(0, 3, (2, b), generator=gen)
    return torch.stack([padded[i, :, dy[i]:dy[i] + 8, dx[i]:dx[i] + 8] for i in range(b)])


def accuracy(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    net.eval()
    with torch.no_grad():
        return float((net(x).argmax(1) == y).float().mean())


def train(cfg: Config, split: data.Split, quick: bool):
    """Cross-entropy with AdamW; keep the weights of the best validation epoch."""
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    x = torch.from_numpy(data.to_network(split.x_train, data.DIGITS_RAW_RANGE, NETWORK_RANGE))
    y = torch.from_numpy(split.y_train)
    x_val = torch.from_numpy(data.to_network(split.x_val, data.DIGITS_RAW_RANGE, NETWORK_RANGE))
    y_val = torch.from_numpy(split.y_val)
    net = ConvNet() if cfg.arch == "cnn" else MLP(cfg.hidden)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = int(np.ceil(len(x) / cfg.batch_size))
    epochs = 1 if quick else cfg.epochs
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, cfg.lr, total_steps=epochs * steps_per_epoch)
    curves: dict[str, list[float]] = {"train loss": [], "val error": []}
    best = (-1.0, None)
    bar = tqdm(range(epochs), desc=cfg.name)
    for _ in bar:
        net.train()
        order = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), cfg.batch_size):
            xb, yb = x[order[i:i + cfg.batch_size]], y[order[i:i + cfg.batch_size]]  # (B,1,8,8)
            if cfg.shift:
                xb = random_shift(xb, gen)
            loss = nn.functional.cross_entropy(net(xb), yb)  # -log softmax(logits)[y]
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            curves["train loss"].append(loss.item())
        val_acc = accuracy(net, x_val, y_val)
        curves["val error"] += [1 - val_acc] * steps_per_epoch
        if val_acc > best[0]:
            best = (val_acc, {k: v.clone() for k, v in net.state_dict().items()})
        bar.set_postfix(loss=f"{curves['train loss'][-1]:.3f}", val_acc=f"{val_acc:.3f}")
    net.load_state_dict(best[1])
    return net.eval(), curves


def main(cfg: Config, output: Path, version: int | None = None, quick: bool = False) -> Path:
    split = data.digits()
    start = time.time()
    net, curves = train(cfg, split, quick)
    training_time = time.time() - start

    spec = data.digits_spec(NETWORK_RANGE)
    x_test = data.to_network(split.x_test, data.DIGITS_RAW_RANGE, NETWORK_RANGE)  # (N, 1, 8, 8)
    rng = np.random.default_rng(cfg.seed)

    def inputs(kind: str, batch: int) -> tuple[np.ndarray]:
        if kind == "real":
            return (x_test[:batch],)
        return (rng.uniform(*NETWORK_RANGE, size=(batch, 1, 8, 8)).astype(np.float32),)

    vdir = writer.version_dir(output, cfg.name, version)
    error = export_verified(net, vdir / "model.onnx", ["x"], ["logits"], inputs)

    metrics = {
        "test_accuracy": accuracy(net, torch.from_numpy(x_test), torch.from_numpy(split.y_test)),
        "val_accuracy": 1 - min(curves["val error"]),
    }
    peer = PEER.get(cfg.name)
    peer_dir = latest_version(output / peer) if peer else None
    if peer_dir is not None and (peer_dir / "card.json").exists():
        peer_card = json.loads((peer_dir / "card.json").read_text())
        metrics["comparison"] = {
            cfg.name: {"hidden": list(cfg.hidden), "parameters": count_parameters(net),
                       "test_accuracy": metrics["test_accuracy"]},
            peer: {"hidden": peer_card["hyperparameters"]["hidden"],
                   "parameters": peer_card["parameters"],
                   "test_accuracy": peer_card["metrics"]["test_accuracy"]},
        }
    kind = "small convnet" if cfg.arch == "cnn" else f"MLP, hidden layers {list(cfg.hidden)}"
    writer.write_configs(vdir, {
        "task": "classification",
        "description": f"Handwritten digit classifier ({kind}) on scikit-learn's 8x8 digits.",
        "graphs": {"model": "model.onnx"},
        "labels": [str(i) for i in range(10)],
        "data": spec,
    })
    writer.card(vdir, task="classification", family="classifier: " + kind, dataset=split.card,
                metrics=metrics, parity={"model.onnx": error}, parameters=count_parameters(net),
                training_time_s=training_time, seed=cfg.seed, hyperparameters=asdict(cfg),
                quick=quick)
    writer.loss_png(vdir / "loss.png", curves)
    return vdir

