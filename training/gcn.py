"""Graph convolutional networks at depths 1-32, with and without residual connections.

Kipf & Welling, "Semi-Supervised Classification with Graph Convolutional Networks" (ICLR 2017),
eq. 2: H' = relu(D^-1/2 (A + I) D^-1/2 H W), written in plain torch as message passing over
edge_index (PyTorch Geometric's convention: messages go from edge_index[0] to edge_index[1]).
The self loops and the normalisation are computed inside the network from edge_index, so the
exported graph takes only the node features and the edges.

Deep plain GCNs oversmooth: every layer averages a node with its neighbours, and after many
layers every node of a connected graph carries about the same vector, "local information washed
out" (Li, Han & Wu, AAAI 2018). Residual connections keep each layer's input (Li et al., DeepGCNs,
ICCV 2019). measures() quantifies the collapse on the last layer's node embeddings.
"""

import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from training import graphs


@dataclass(frozen=True)
class Config:
    depth: int  # message-passing layers
    residual: bool
    hidden: int = 32
    epochs: int = 30
    graphs_per_batch: int = 10
    lr: float = 5e-3
    weight_decay: float = 5e-4
    seed: int = 0

    @property
    def name(self) -> str:
        return f"{'residual' if self.residual else 'plain'}-{self.depth}"


DEPTHS = (1, 2, 4, 8, 16, 32)


def normalised_edges(edge_index: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(src, dst, weight) of A + I, each (E + N,): weight = 1 / sqrt(deg(src) deg(dst)), deg with the loop."""
    loops = torch.arange(n, dtype=edge_index.dtype)  # (N,)
    src = torch.cat([edge_index[0], loops])
    dst = torch.cat([edge_index[1], loops])
    # Sums go through 1-D scatter_add, ONNX ScatterElements (reduction "add"), which ONNX Runtime
    # runs in order on any number of threads. Not index_add: it exports to ScatterND, whose "add"
    # ONNX Runtime splits over its threads, and two threads adding into one node race (wrong
    # sums, different on every run). A 2-D ScatterElements is right too, but its cost grew
    # faster than the graph (bench/graphs.py); flat indices grow with it.
    degree = torch.zeros(n).scatter_add(0, dst, torch.ones(dst.shape[0]))  # (N,) in-degree + 1
    inv_sqrt = degree.rsqrt()
    return src, dst, inv_sqrt[src] * inv_sqrt[dst]


def flat_targets(dst: torch.Tensor, width: int) -> torch.Tensor:
    """(E * H,): where each element of each message lands in the flattened (N * H) sums."""
    return (dst[:, None] * width + torch.arange(width, dtype=dst.dtype)).reshape(-1)


def propagate(h: torch.Tensor, src: torch.Tensor, targets: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Sum over incoming edges of weight * h[src]: (N, H) -> (N, H); targets from flat_targets."""
    messages = (h[src] * weight[:, None]).reshape(-1)  # (E * H,)
    return torch.zeros(h.shape[0] * h.shape[1]).scatter_add(0, targets, messages).reshape(h.shape)


class GCN(nn.Module):
    """features -> linear encoder -> `depth` graph convolutions -> linear head -> logits.

    forward returns (logits (N, C), embeddings (N, H)): the embeddings are the last layer's
    node vectors, served so that anyone can measure their oversmoothing.
    """

    def __init__(self, features: int, classes: int, hidden: int, depth: int, residual: bool):
        super().__init__()
        self.residual = residual
        self.encode = nn.Linear(features, hidden)
        self.layers = nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(depth))
        self.head = nn.Linear(hidden, classes)

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        src, dst, weight = normalised_edges(edge_index, x.shape[0])
        h = torch.relu(self.encode(x))  # (N, H)
        targets = flat_targets(dst, h.shape[1])  # once for every layer
        for layer in self.layers:
            update = torch.relu(propagate(layer(h), src, targets, weight))  # (N, H)
            h = h + update if self.residual else update
        return self.head(h), h


def to_torch(g: graphs.Graph) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return torch.from_numpy(g.x), torch.from_numpy(g.edge_index), torch.from_numpy(g.y)


def accuracy(net: GCN, batch: list[graphs.Graph]) -> float:
    """Node accuracy over all nodes of the graphs (one disjoint union, one forward pass)."""
    net.eval()
    x, edge_index, y = to_torch(graphs.join(batch))
    with torch.no_grad():
        return float((net(x, edge_index)[0].argmax(1) == y).float().mean())


def train(cfg: Config, train_graphs: list[graphs.Graph], val_graphs: list[graphs.Graph], quick: bool):
    """Cross-entropy over every node, batches of graphs joined into one disjoint graph, AdamW;
    keep the weights of the best validation epoch."""
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    net = GCN(graphs.FEATURES, graphs.CLASSES, cfg.hidden, cfg.depth, cfg.residual)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    epochs = 1 if quick else cfg.epochs
    curves: dict[str, list[float]] = {"train loss": [], "val error": []}
    best = (-1.0, None)
    started = time.time()
    for _ in range(epochs):
        net.train()
        order = torch.randperm(len(train_graphs), generator=gen).tolist()
        steps = 0
        for i in range(0, len(order), cfg.graphs_per_batch):
            x, edge_index, y = to_torch(graphs.join([train_graphs[j] for j in order[i:i + cfg.graphs_per_batch]]))
            loss = nn.functional.cross_entropy(net(x, edge_index)[0], y)  # mean over nodes
            opt.zero_grad()
            loss.backward()
            opt.step()
            curves["train loss"].append(loss.item())
            steps += 1
        val = accuracy(net, val_graphs)
        curves["val error"] += [1 - val] * steps
        if val > best[0]:
            best = (val, {k: v.clone() for k, v in net.state_dict().items()})
    net.load_state_dict(best[1])
    return net.eval(), curves, {"val_accuracy": best[0], "training_time_s": time.time() - started}


def measures(embeddings: np.ndarray, edge_index: np.ndarray) -> dict:
    """Oversmoothing of one graph's node embeddings h (N, H): when they all collapse to one
    direction, the cosine similarity goes to 1 and the Dirichlet energy to 0.

    - mean pairwise cosine similarity over node pairs i != j (a zero vector counts as
      similarity 0 with anything: it carries nothing);
    - relative Dirichlet energy, E(h) = sum over edges (i, j) of
      |h_i / sqrt(1 + d_i) - h_j / sqrt(1 + d_j)|^2 / sum_i |h_i|^2 (Cai & Wang 2020, eq. 2;
      divided by the embeddings' own energy so that their scale drops out). 0 when no edge.
    """
    h = embeddings.astype(np.float64)
    n = len(h)
    norms = np.linalg.norm(h, axis=1)
    unit = h / np.maximum(norms, 1e-12)[:, None]
    total = unit.sum(0)
    pair_sum = total @ total - (norms > 1e-12).sum()  # sum over i != j of cos(h_i, h_j)
    cosine = float(pair_sum / (n * (n - 1))) if n > 1 else 1.0
    src, dst = edge_index
    degree = np.bincount(dst, minlength=n) + 1.0
    scaled = h / np.sqrt(degree)[:, None]
    energy = 0.5 * float(((scaled[src] - scaled[dst]) ** 2).sum())  # each undirected edge once
    power = float((h ** 2).sum())
    return {"cosine_similarity": cosine, "dirichlet_energy": energy / power if power > 0 else 0.0}


def evaluate(net: GCN, test_graphs: list[graphs.Graph], karate: graphs.Graph) -> dict:
    """Test accuracy over every test node, the karate club's accuracy, and measures() averaged
    over the test graphs."""
    net.eval()
    per_graph = []
    with torch.no_grad():
        for g in test_graphs:
            _, embeddings = net(*to_torch(g)[:2])
            per_graph.append(measures(embeddings.numpy(), g.edge_index))
    return {
        "test_accuracy": accuracy(net, test_graphs),
        "karate_accuracy": accuracy(net, [karate]),
        "cosine_similarity": float(np.mean([m["cosine_similarity"] for m in per_graph])),
        "dirichlet_energy": float(np.mean([m["dirichlet_energy"] for m in per_graph])),
    }
