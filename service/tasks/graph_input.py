"""A graph from a request, checked before it reaches a network: node features (N, F) and
edge_index (2, E), PyTorch Geometric's convention (a message goes from edge_index[0] to
edge_index[1]). An index outside the graph would make the network gather out of range, so every
graph is checked here, from V1 and V2 alike, and a bad one is a 400 naming the problem.
"""

import numpy as np

from service.errors import InvalidInput

_FLOAT32_MAX = float(np.finfo(np.float32).max)


def check(x: np.ndarray, edge_index: np.ndarray, max_nodes: int, max_edges: int, where: str = "") -> None:
    """Raise InvalidInput unless x is (N, F) finite with 1 <= N <= max_nodes and edge_index is
    (2, E) with E <= max_edges and every index a node of the graph (0..N-1)."""
    at = f"{where}: " if where else ""
    nodes, edges = x.shape[0], edge_index.shape[1]
    if nodes < 1:
        raise InvalidInput(f"{at}a graph needs at least one node")
    if nodes > max_nodes:
        raise InvalidInput(f"{at}{nodes} nodes is over this model's limit of {max_nodes} (config max_nodes)")
    if edges > max_edges:
        raise InvalidInput(f"{at}{edges} edges is over this model's limit of {max_edges} (config max_edges)")
    bad = ~np.isfinite(x) | (np.abs(x) > _FLOAT32_MAX)
    if bad.any():
        node, feature = np.argwhere(bad)[0]
        raise InvalidInput(f"{at}node {node} feature {feature} is {x[node, feature]}: features must be finite numbers")
    if edges == 0:
        return
    low = edge_index.min()
    if low < 0:
        row, col = np.argwhere(edge_index < 0)[0]
        raise InvalidInput(f"{at}edge {col} has a negative node index ({edge_index[row, col]}); "
                           f"nodes are numbered 0..{nodes - 1}")
    if edge_index.max() >= nodes:
        row, col = np.argwhere(edge_index >= nodes)[0]
        raise InvalidInput(f"{at}edge {col} names node {edge_index[row, col]}, but the graph has {nodes} "
                           f"nodes (0..{nodes - 1})")


def parse(item, features: int, directed: bool, limits: tuple[int, int], where: str) -> tuple[np.ndarray, np.ndarray]:
    """A V1 instance {"nodes": [[f, ...], ...], "edges": [[a, b], ...]} -> checked (x (N, F)
    float32, edge_index (2, E) int64). Undirected (the default): each pair is an edge both ways,
    given once or twice; directed: each pair is one message from a to b. limits: (nodes, edges)."""
    if not isinstance(item, dict) or "nodes" not in item or set(item) - {"nodes", "edges"}:
        raise InvalidInput(f'{where}: a graph is {{"nodes": [[feature, ...], ...], "edges": [[from, to], ...]}}')
    nodes, edges = item["nodes"], item.get("edges", [])
    if not isinstance(nodes, list) or not all(isinstance(n, list) for n in nodes):
        raise InvalidInput(f"{where}.nodes: a list of nodes, each a list of {features} numbers")
    for i, node in enumerate(nodes):
        if len(node) != features:
            raise InvalidInput(f"{where}.nodes[{i}] has {len(node)} features, but the model takes {features}")
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in node):
            raise InvalidInput(f"{where}.nodes[{i}]: features must be numbers")
    x = np.asarray(nodes, dtype=np.float64).reshape(len(nodes), features)
    if not isinstance(edges, list) or not all(
        isinstance(e, list) and len(e) == 2 and all(isinstance(v, int) and not isinstance(v, bool) for v in e)
        for e in edges
    ):
        raise InvalidInput(f"{where}.edges: a list of [from, to] pairs of node indices (integers)")
    if any(not -(2**63) <= v < 2**63 for e in edges for v in e):
        raise InvalidInput(f"{where}.edges: a node index is beyond int64")
    pairs = np.asarray(edges, dtype=np.int64).reshape(len(edges), 2)  # (E, 2)
    check(x, pairs.T, *limits, where=where)  # the pairs as sent, so an error names what was sent
    if not directed and len(pairs):
        # Both directions, each once; a loop (a, a) adds nothing: the network adds its own.
        both = np.concatenate([pairs, pairs[:, ::-1]])
        pairs = np.unique(both[both[:, 0] != both[:, 1]], axis=0)
        check(x, pairs.T, *limits, where=where)  # both ways may be over the edge limit
    return x.astype(np.float32), np.ascontiguousarray(pairs.T)
