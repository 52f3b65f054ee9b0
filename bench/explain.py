"""Are :explain's attributions faithful? Deletion curves on the held-out digits, through a server.

    python bench/explain.py [--count 360] [--orders 16] [--json out.json]

For each test digit, the pixels are set to the baseline (blank paper, 0) one by one in the order
of their attributions for the predicted label, most positive first, and the label's probability
is read after each deletion: a faithful explanation makes it fall fast, so the area under the
curve (probability against the share of pixels deleted) is small. The same digit with its pixels
deleted in a random order gives the reference area. For the regressor, the attributions of every
test patient must add up to value - baseline_value (Shapley sampling's efficiency). Starts
`python -m service` on 127.0.0.1 over models/ unless --url names a running server.
"""

import argparse
import sys
import time
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from servers import report, served  # bench/servers.py, beside this script

from training import data

SEED = 15


def deletion_curve(client: httpx.Client, model: str, digit: np.ndarray, order: np.ndarray, label: str) -> np.ndarray:
    """The label's probability after deleting the first k pixels of `order`, k = 0..64."""
    flat = digit.reshape(-1)
    steps = []
    for k in range(len(flat) + 1):
        x = flat.copy()
        x[order[:k]] = 0.0
        steps.append(x.tolist())
    response = client.post(f"/v1/models/{model}:predict", json={"instances": steps, "top_k": 1})
    response.raise_for_status()
    return np.array([p["probabilities"][label] for p in response.json()["predictions"]])


def area(curve: np.ndarray) -> float:
    """Trapezoidal area under the curve over the share of pixels deleted, 0..1."""
    return float(np.sum((curve[1:] + curve[:-1]) / 2) / (len(curve) - 1))


def classifier(client: httpx.Client, model: str, count: int, orders: int) -> dict:
    split = data.digits()
    rng = np.random.default_rng(SEED)
    explained, random, seconds = [], [], []
    for digit in split.x_test[:count]:
        started = time.perf_counter()
        response = client.post(f"/v1/models/{model}:explain", json={"instances": [digit.reshape(-1).tolist()], "orders": orders})
        seconds.append(time.perf_counter() - started)
        response.raise_for_status()
        answer = response.json()["explanations"][0]
        phi = np.array(answer["attributions"]).reshape(-1)
        explained.append(area(deletion_curve(client, model, digit, np.argsort(-phi, kind="stable"), answer["label"])))
        random.append(area(deletion_curve(client, model, digit, rng.permutation(phi.size), answer["label"])))
    explained, random = np.array(explained), np.array(random)
    return {
        "model": model,
        "test_digits": len(explained),
        "orders": orders,
        "deletion_auc_attribution_order": round(float(explained.mean()), 4),
        "deletion_auc_random_order": round(float(random.mean()), 4),
        "share_of_digits_where_attribution_order_falls_faster": round(float(np.mean(explained < random)), 4),
        "explain_request_ms_median": round(1000 * float(np.median(seconds)), 1),
    }


def regressor(client: httpx.Client, model: str, orders: int) -> dict:
    split = data.diabetes()
    response = client.post(f"/v1/models/{model}:explain", json={"instances": split.x_test.tolist(), "orders": orders})
    response.raise_for_status()
    answers = response.json()["explanations"]
    gaps = [abs(sum(a["attributions"].values()) - (a["value"] - a["baseline_value"])) for a in answers]
    spread = [abs(a["value"] - a["baseline_value"]) for a in answers]
    mean_abs = {f: round(float(np.mean([abs(a["attributions"][f]) for a in answers])), 2) for f in answers[0]["attributions"]}
    return {
        "model": model,
        "test_patients": len(answers),
        "orders": orders,
        "max_abs_sum_minus_value_gap": float(max(gaps)),
        "mean_abs_value_minus_baseline": round(float(np.mean(spread)), 2),
        "mean_abs_attribution_by_feature": dict(sorted(mean_abs.items(), key=lambda kv: -kv[1])),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=360, help="test digits (360: all)")
    parser.add_argument("--orders", type=int, default=16)
    parser.add_argument("--models", default="digits-cnn,digits-shallow,digits-deep")
    parser.add_argument("--url", help="an already running server (default: start one over models/)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    with served(args.url) as url, httpx.Client(base_url=url, timeout=120) as client:
        result = {
            "classifiers": [classifier(client, m, args.count, args.orders) for m in args.models.split(",")],
            "regressor": regressor(client, "diabetes-regressor", args.orders),
            "command": f"python bench/explain.py --count {args.count} --orders {args.orders}",
        }
    report(result, args.json)

if __name__ == "__main__":
    main()
