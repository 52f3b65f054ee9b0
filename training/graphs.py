"""Graphs for node classification: seeded stochastic block models, and Zachary's karate club.

Numpy only (the tests rebuild the test graphs without torch). A graph is its node features
x (N, F) float32, its edges in PyTorch Geometric's convention, edge_index (2, E) int64 holding
both directions of every undirected edge, and a community per node y (N,) int64.

Every graph draws its communities from the same CLASSES classes, and a node's features are its
class's prototype plus Gaussian noise: a node alone is hard to read, its neighbourhood (mostly
of its own community) tells. Train, validation and test are different graphs (inductive).
"""

from dataclasses import dataclass

import numpy as np

CLASSES = 5
FEATURES = 8
LABELS = [f"community {c}" for c in range(CLASSES)]
PROTOTYPE_SEED = 14  # the class prototypes: one draw, shared by every split and the karate club
NOISE = 0.8  # std of the feature noise around a prototype of norm SIGNAL
SIGNAL = 1.0
NODES = (20, 200)  # inclusive range of a generated graph's size
COMMUNITIES = (2, 5)
DEGREE_IN, DEGREE_OUT = 5.0, 1.0  # expected neighbours of a node inside / outside its community
SPLITS = {"train": (0, 300), "val": (10_000, 60), "test": (20_000, 100)}  # (first seed, graphs)
# networkx's karate club: each member's club after the split (Zachary 1977), as our classes.
KARATE_CLUBS = {"Mr. Hi": 0, "Officer": 1}
KARATE_SEED = 34


@dataclass
class Graph:
    x: np.ndarray  # (N, F) float32
    edge_index: np.ndarray  # (2, E) int64, both directions of each edge
    y: np.ndarray  # (N,) int64 community

    @property
    def nodes(self) -> int:
        return len(self.y)

    def as_json(self) -> dict:
        """The graph as the V1 endpoint takes it: nodes' features and each undirected edge once."""
        src, dst = self.edge_index
        once = src < dst
        # float32 -> float64 -> JSON -> float32 is exact: a client sends the very same graph.
        return {"nodes": self.x.astype(np.float64).tolist(),
                "edges": np.stack([src[once], dst[once]], 1).tolist(),
                "communities": self.y.tolist()}


def join(batch: list[Graph]) -> Graph:
    """Graphs as one disjoint graph: nodes stacked, each graph's edges offset by the nodes before it."""
    offsets = np.cumsum([0] + [g.nodes for g in batch[:-1]])
    return Graph(np.concatenate([g.x for g in batch]),
                 np.concatenate([g.edge_index + o for g, o in zip(batch, offsets)], axis=1),
                 np.concatenate([g.y for g in batch]))


def prototypes() -> np.ndarray:
    """(CLASSES, F): one random direction of norm SIGNAL per class."""
    rng = np.random.default_rng(PROTOTYPE_SEED)
    p = rng.standard_normal((CLASSES, FEATURES))
    return (SIGNAL * p / np.linalg.norm(p, axis=1, keepdims=True)).astype(np.float32)


def features(y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(N, F) float32: each node's class prototype plus N(0, NOISE^2) noise."""
    noise = rng.standard_normal((len(y), FEATURES)) * NOISE
    return (prototypes()[y] + noise).astype(np.float32)


def undirected(pairs: np.ndarray) -> np.ndarray:
    """(2, 2P) int64: each (a, b) pair of (P, 2) in both directions, duplicates and loops dropped."""
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    both = np.concatenate([pairs, pairs[:, ::-1]])
    both = np.unique(both[both[:, 0] != both[:, 1]], axis=0)
    return both.T.copy()


def sbm(seed: int) -> Graph:
    """One stochastic block model (Holland et al. 1983): 2-5 communities of 20-200 nodes in all.

    Nodes i and j are joined with probability p_in inside a community and p_out across, set so a
    node expects DEGREE_IN neighbours in its community and DEGREE_OUT outside it.
    """
    rng = np.random.default_rng(seed)
    n = int(rng.integers(NODES[0], NODES[1] + 1))
    k = int(rng.integers(COMMUNITIES[0], COMMUNITIES[1] + 1))
    classes = rng.choice(CLASSES, size=k, replace=False)
    y = classes[rng.integers(0, k, size=n)].astype(np.int64)  # (N,)
    p_in = min(1.0, DEGREE_IN / max(1, n / k - 1))
    p_out = min(1.0, DEGREE_OUT / max(1, n - n / k))
    same = y[:, None] == y[None, :]  # (N, N)
    joined = np.triu(rng.random((n, n)) < np.where(same, p_in, p_out), k=1)
    edge_index = undirected(np.argwhere(joined))
    return Graph(features(y, rng), edge_index, y)


def split(name: str, count: int | None = None) -> list[Graph]:
    first, graphs = SPLITS[name]
    return [sbm(first + i) for i in range(count if count is not None else graphs)]


def karate() -> Graph:
    """Zachary's karate club (34 members, 78 friendships), from networkx, which ships it.

    It has no node features: each member gets the features of its club's class (Mr. Hi's
    faction class 0, the officer's class 1) drawn as for a generated graph, seeded.
    """
    import networkx as nx  # training only: the service never needs it

    club = nx.karate_club_graph()
    y = np.array([KARATE_CLUBS[club.nodes[i]["club"]] for i in range(club.number_of_nodes())], dtype=np.int64)
    edge_index = undirected(np.array(list(club.edges()), dtype=np.int64))
    return Graph(features(y, np.random.default_rng(KARATE_SEED)), edge_index, y)


def describe() -> dict:
    """The card's dataset section: how every graph was made, so anyone can rebuild them."""
    sizes = {name: [g.nodes for g in split(name)] for name in SPLITS}
    return {
        "name": "stochastic block models (generated) + Zachary's karate club (networkx)",
        "generator": "training/graphs.py",
        "classes": CLASSES, "features": FEATURES, "labels": LABELS,
        "nodes_per_graph": list(NODES), "communities_per_graph": list(COMMUNITIES),
        "expected_degree": {"inside_community": DEGREE_IN, "across_communities": DEGREE_OUT},
        "feature_noise_std": NOISE, "prototype_norm": SIGNAL, "prototype_seed": PROTOTYPE_SEED,
        "splits": {name: {"first_seed": first, "graphs": count, "nodes": sum(sizes[name])}
                   for name, (first, count) in SPLITS.items()},
        "karate": {"nodes": 34, "edges": 78, "feature_seed": KARATE_SEED,
                   "classes": {club: LABELS[c] for club, c in KARATE_CLUBS.items()}},
        "inductive": "train, validation and test are different graphs",
    }
