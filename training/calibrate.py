"""python -m training.calibrate [--output DIR]: the serving aids of trained models, from their ONNX.

1. The out-of-distribution guard of each digit classifier (issue 15): digits-flow's log-density
   of the validation digits gives the threshold at FALSE_POSITIVE_RATE and the percentiles the
   service reports; the guard is then measured on the test digits against the sets of
   training/ood.py (AUROC, flag rate). Written into the classifier's version config.yaml
   (`guard:`) and card.json (`guard`).
2. The regressor's explanation baseline: the training patients' mean features (`explain:`).

No training: numpy and onnxruntime over the committed graphs, so tests/training recomputes it.
"""

import argparse
import json
import math
from pathlib import Path

import numpy as np
import onnxruntime as ort
import yaml

from training import data, ood, writer
from training.judge import latest_version
from training.units import to_network

GUARD_MODEL = "digits-flow"
CLASSIFIERS = ("digits-cnn", "digits-shallow", "digits-deep")
REGRESSOR = "diabetes-regressor"
FALSE_POSITIVE_RATE = 0.005  # of validation digits flagged: the threshold's definition
PERCENTILES = 101  # validation log-densities at 0, 1, ..., 100 %
OOD_SEED = 2024  # not a seed training used
COMMAND = "python -m training.calibrate"


def read_config(vdir: Path) -> dict:
    return yaml.safe_load((vdir / "config.yaml").read_text(encoding="utf-8"))


class FlowDensity:
    """log p(x) in raw units from a flow's forward graph (Dinh et al. 2017, eq. 3)."""

    def __init__(self, vdir: Path):
        config = read_config(vdir)
        self.spec = config["data"]
        self.session = ort.InferenceSession(str(vdir / config["graphs"]["forward"]), providers=["CPUExecutionProvider"])
        (r0, r1), (n0, n1) = self.spec["raw_range"], self.spec["network_range"]
        self.log_jacobian = math.prod(self.spec["shape"]) * math.log((n1 - n0) / (r1 - r0))

    def __call__(self, raw: np.ndarray) -> np.ndarray:
        x = to_network(raw, self.spec["raw_range"], self.spec["network_range"])
        z, log_det = self.session.run(None, {self.session.get_inputs()[0].name: x})
        z = z.astype(np.float64)  # (N, D)
        log_p = -0.5 * (z**2).sum(1) - 0.5 * z.shape[1] * math.log(2 * math.pi) + log_det.reshape(-1)
        return log_p + self.log_jacobian


def auroc(inside: np.ndarray, outside: np.ndarray) -> float:
    """P(score of an in-distribution digit > score of an outsider), ties counted half."""
    above = (inside[:, None] > outside[None, :]).mean()
    ties = (inside[:, None] == outside[None, :]).mean()
    return float(above + 0.5 * ties)


def guard(density: FlowDensity, split: data.Split, flow_version: int) -> tuple[dict, dict]:
    """(config's guard section, card's guard section) from the flow and the digits split."""
    val = density(split.x_val)
    threshold = float(np.quantile(val, FALSE_POSITIVE_RATE))
    test = density(split.x_test)
    sets = {}
    for name, x in ood.sets(split.x_test, OOD_SEED).items():
        log_p = density(x)
        sets[name] = {"count": len(x), "auroc": round(auroc(test, log_p), 4),
                      "flag_rate": round(float(np.mean(log_p < threshold)), 4),
                      "median_log_density": round(float(np.median(log_p)), 1)}
    config = {
        "model": GUARD_MODEL,
        "version": flow_version,
        "threshold": round(threshold, 3),
        "false_positive_rate": FALSE_POSITIVE_RATE,
        "percentiles": [round(float(v), 3) for v in np.percentile(val, np.linspace(0, 100, PERCENTILES))],
    }
    card = {
        "score": f"log-density of {GUARD_MODEL} version {flow_version}, raw units (pixels 0..16)",
        "threshold": config["threshold"],
        "calibration": f"{FALSE_POSITIVE_RATE:.1%} quantile of the {len(val)} validation digits",
        "test_flag_rate": round(float(np.mean(test < threshold)), 4),
        "test_digits": len(test),
        "median_test_log_density": round(float(np.median(test)), 1),
        "out_of_distribution": sets,
        "ood_seed": OOD_SEED,
        "command": COMMAND,
    }
    return config, card


def update(vdir: Path, config_key: str, config_value: dict, card_key: str, card_value: dict) -> None:
    """Add one section to a version's config.yaml and card.json, leaving the rest as it is."""
    config = read_config(vdir)
    config[config_key] = config_value
    (vdir / "config.yaml").write_text(writer._yaml(config), encoding="utf-8")
    card_path = vdir / "card.json"
    card = json.loads(card_path.read_text(encoding="utf-8"))
    card[card_key] = card_value
    card_path.write_text(json.dumps(card, indent=1) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog=COMMAND, description=__doc__.split("\n")[0])
    parser.add_argument("--output", type=Path, default=Path("models"), help="the model repository root")
    args = parser.parse_args(argv)
    flow_dir = latest_version(args.output / GUARD_MODEL)
    split = data.digits()
    guard_config, guard_card = guard(FlowDensity(flow_dir), split, int(flow_dir.name))
    for name in CLASSIFIERS:
        vdir = latest_version(args.output / name)
        if vdir is not None:
            update(vdir, "guard", guard_config, "guard", guard_card)
            print(f"{name}: guard threshold {guard_config['threshold']} written to {vdir}")
    print(json.dumps(guard_card, indent=1))
    regressor = latest_version(args.output / REGRESSOR)
    if regressor is not None:
        patients = data.diabetes()
        baseline = [round(float(v), 4) for v in patients.x_train.astype(np.float64).mean(0)]
        update(regressor, "explain", {"baseline": baseline}, "explain",
               {"baseline": "mean features of the training patients", "command": COMMAND})
        print(f"{REGRESSOR}: explanation baseline {baseline}")


if __name__ == "__main__":
    main()
