"""Attributions by Shapley value sampling: forward passes only, one batched execution per request.

A server that holds only an ONNX graph has no gradients, so the method must be model-agnostic.
Occlusion (one feature removed at a time) needs D + 1 rows but ignores interactions, and its
attributions add up to nothing in particular. Integrated gradients by finite differences needs
D extra rows per point of the path and only approximates completeness on a ReLU network. Shapley
value sampling (Castro, Gómez & Tejada 2009; Štrumbelj & Kononenko 2014) walks from the baseline
to the input adding one feature at a time in a random order: each step's change of the output is
that feature's marginal contribution, and along every order they telescope to f(x) - f(baseline),
so the attributions sum to it exactly (the "efficiency" axiom), whatever the number of orders.
Orders come in antithetic pairs (an order and its reverse), which halves the variance for the same
rows. K orders of D features cost K * D + 2 rows: 16 orders over 64 pixels are 1,026 rows of an
8x8 digit, a few milliseconds in one execution.
"""

from collections.abc import Awaitable, Callable
from typing import Literal

import numpy as np
from pydantic import Field

from service.errors import InvalidInput
from service.tasks.params import PredictParams

MAX_ROWS = 65536  # rows of one request's execution (instances x orders x features)


class ExplainParams(PredictParams):
    orders: int = Field(16, ge=2, le=512, description="random feature orders (antithetic pairs) to average")
    seed: int = Field(0, ge=0, lt=2**63, description="seed of the orders: the same request, the same answer")
    baseline: list[float] | None = Field(
        None, description="raw values that stand for 'no information' (default: blank image / training mean)"
    )
    format: Literal["array", "png"] = Field("array", description="png adds a heat map of each image's attributions")


def paths(x: np.ndarray, baseline: np.ndarray, orders: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The inputs to evaluate, and the orders that made them.

    x (N, D), baseline (D,) -> rows (N * (K * D + 2), D): for each instance the baseline, x, then
    for each order k the K x D points that add features one by one (the last point of an order is
    x itself, so it is not repeated); orders (K, D) feature indices, halves reversed.
    """
    n, d = x.shape
    rng = np.random.default_rng(seed)
    half = [rng.permutation(d) for _ in range((orders + 1) // 2)]
    order = np.stack([*half, *(p[::-1] for p in half)])[:orders]  # (K, D) antithetic pairs
    k = len(order)
    # added[k, j, i]: feature i is taken from x at step j (0-based) of order k
    rank = np.argsort(order, axis=1)  # (K, D): the step at which each feature is added
    added = rank[:, None, :] <= np.arange(d)[None, :, None]  # (K, D steps, D features)
    points = np.where(added[None], x[:, None, None, :], baseline[None, None, None, :])  # (N, K, D, D)
    rows = np.concatenate(
        [np.broadcast_to(baseline, (n, 1, d)), x[:, None, :], points.reshape(n, k * d, d)], axis=1
    )  # (N, K*D + 2, D)
    return rows.reshape(n * (k * d + 2), d), order


def attributions(values: np.ndarray, order: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """values (N, K * D + 2) of f at `paths`' rows -> (phi (N, D), f(baseline) (N,), f(x) (N,))."""
    k, d = order.shape
    n = len(values)
    f_base, f_x = values[:, 0], values[:, 1]
    steps = values[:, 2:].reshape(n, k, d)  # f after adding the j-th feature of order k
    before = np.concatenate([np.broadcast_to(f_base[:, None, None], (n, k, 1)), steps[:, :, :-1]], axis=2)
    gains = steps - before  # (N, K, D) marginal contribution of the feature added at step j
    phi = np.zeros((n, k, d))
    np.put_along_axis(phi, np.broadcast_to(order[None], (n, k, d)), gains, axis=2)
    return phi.mean(axis=1), f_base, f_x


async def evaluate(
    x: np.ndarray, baseline: np.ndarray, params: ExplainParams, f: Callable[[np.ndarray], Awaitable[np.ndarray]]
) -> tuple[np.ndarray, np.ndarray]:
    """f (rows (M, D) -> (M, C)) at every point of every path of x (N, D) in one execution:
    (values (N, K * D + 2, C), orders (K, D)); `attributions` takes one output column of it."""
    rows, order = paths(x, baseline, params.orders, params.seed)
    if len(rows) > MAX_ROWS:
        raise InvalidInput(
            f"{len(x)} instances x {params.orders} orders x {x.shape[1]} features need {len(rows)} rows; "
            f"at most {MAX_ROWS} per request: send fewer instances or orders"
        )
    values = np.asarray(await f(rows), np.float64).reshape(len(x), len(rows) // len(x), -1)
    return values, order


def baseline_of(params: ExplainParams, config, units, default: np.ndarray | None) -> np.ndarray:
    """The request's baseline, else config.yaml's `explain.baseline`, else the task's default."""
    chosen = params.baseline
    if chosen is None and config.explain is not None:
        chosen = config.explain.baseline
    if chosen is None:
        if default is None:
            raise InvalidInput("this model has no explanation baseline in its config.yaml: send 'baseline'")
        return default
    baseline = np.asarray(chosen, np.float64)
    if baseline.shape != (units.size,) or not np.isfinite(baseline).all():
        raise InvalidInput(f"baseline must be {units.size} finite numbers (one per input feature)")
    return baseline


def method(params: ExplainParams) -> dict:
    return {"method": "shapley value sampling", "orders": params.orders, "seed": params.seed}
