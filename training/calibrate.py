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


# Issue 15's targets: AUROC per set, and the false flags on test digits.
TARGETS = {"uniform noise": 0.99, "shuffled pixels": 0.99, "blank and constant": 0.99,
           "random strokes": 0.95, "letters A-Z": 0.95}
MAX_TEST_FLAG_RATE = 0.01


class PixelBackground:
    """A background model for the likelihood ratio (Ren et al. 2019): each pixel independent,
    its 17 levels counted on the training digits (plus one). Explains away how much ink an image
    has, so the ratio scores shape; the flow's log-density minus this is the alternative score."""

    def __init__(self, x_train: np.ndarray):
        levels = self._levels(x_train)
        counts = np.stack([np.bincount(levels[:, j], minlength=17) for j in range(levels.shape[1])]) + 1.0
        self.log_p = np.log(counts / counts.sum(1, keepdims=True))  # (64, 17)

    @staticmethod
    def _levels(x: np.ndarray) -> np.ndarray:
        return np.clip(np.rint(x.reshape(len(x), -1)), 0, 16).astype(int)  # (N, 64)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        levels = self._levels(x)
        return self.log_p[np.arange(levels.shape[1]), levels].sum(1)


def measure(score, split: data.Split, outsiders: dict[str, np.ndarray]) -> dict:
    """A score's threshold (validation), false flags (test) and AUROC per out-of-distribution set."""
    val, test = score(split.x_val), score(split.x_test)
    threshold = float(np.quantile(val, FALSE_POSITIVE_RATE))
    sets, named = {}, ood.names()
    for name, x in outsiders.items():
        s = score(x)
        sets[name] = {"count": len(x), "auroc": round(auroc(test, s), 4),
                      "flag_rate": round(float(np.mean(s < threshold)), 4),
                      "median_score": round(float(np.median(s)), 1)}
        if name in named:  # which ones pass, with their score and its percentile among validation
            sets[name]["passed"] = [[label, round(float(v), 1), round(float(np.mean(val < v)) * 100, 1)]
                                    for label, v in zip(named[name], s) if v >= threshold]
    flags = round(float(np.mean(test < threshold)), 4)
    misses = [f"{name}: AUROC {sets[name]['auroc']} < {bar}" for name, bar in TARGETS.items() if sets[name]["auroc"] < bar]
    if flags > MAX_TEST_FLAG_RATE:
        misses.append(f"test flag rate {flags} > {MAX_TEST_FLAG_RATE}")
    return {"val": val, "threshold": threshold, "test_flag_rate": flags, "median_test_score": round(float(np.median(test)), 1),
            "out_of_distribution": sets, "misses": misses}


def guard(density: FlowDensity, split: data.Split, flow_version: int) -> tuple[dict, dict]:
    """(config's guard section, card's guard section) from the flow and the digits split.

    The raw log-density is the guard's score: it meets every target. The likelihood ratio against
    PixelBackground is measured beside it, as the published fix for flows that prefer simple
    inputs (the card says what it would gain and lose)."""
    outsiders = ood.sets(split.x_test, OOD_SEED)
    raw = measure(density, split, outsiders)
    background = PixelBackground(split.x_train)
    ratio = measure(lambda x: density(x) - background(x), split, outsiders)
    config = {
        "model": GUARD_MODEL,
        "version": flow_version,
        "threshold": round(raw["threshold"], 3),
        "false_positive_rate": FALSE_POSITIVE_RATE,
        "percentiles": [round(float(v), 3) for v in np.percentile(raw["val"], np.linspace(0, 100, PERCENTILES))],
    }
    card = {
        "score": f"log-density of {GUARD_MODEL} version {flow_version}, raw units (pixels 0..16)",
        "threshold": config["threshold"],
        "calibration": f"{FALSE_POSITIVE_RATE:.1%} quantile of the {len(raw['val'])} validation digits",
        "test_flag_rate": raw["test_flag_rate"],
        "test_digits": len(split.x_test),
        "median_test_log_density": raw["median_test_score"],
        "out_of_distribution": raw["out_of_distribution"],
        "targets_missed": raw["misses"],
        "alternative": {
            "score": "likelihood ratio: the log-density minus an independent-pixel background's log-probability",
            "threshold": round(ratio["threshold"], 3),
            "test_flag_rate": ratio["test_flag_rate"],
            "out_of_distribution": {k: {"auroc": v["auroc"], "flag_rate": v["flag_rate"], **({"passed": v["passed"]} if "passed" in v else {})}
                                    for k, v in ratio["out_of_distribution"].items()},
            "targets_missed": ratio["misses"],
        },
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
    if flow_dir is None:
        print(f"no {GUARD_MODEL} in {args.output}: the classifiers get no guard")
    else:
        guard_config, guard_card = guard(FlowDensity(flow_dir), data.digits(), int(flow_dir.name))
        for name in CLASSIFIERS:
            vdir = latest_version(args.output / name)
            if vdir is not None:
                update(vdir, "guard", guard_config, "guard", guard_card)
                print(f"{name}: guard threshold {guard_config['threshold']} written to {vdir}")
        print(json.dumps({k: v for k, v in guard_card.items() if k != "alternative"}, indent=1))
    regressor = latest_version(args.output / REGRESSOR)
    if regressor is not None:
        patients = data.diabetes()
        baseline = [round(float(v), 4) for v in patients.x_train.astype(np.float64).mean(0)]
        update(regressor, "explain", {"baseline": baseline}, "explain",
               {"baseline": "mean features of the training patients", "command": COMMAND})
        print(f"{REGRESSOR}: explanation baseline {baseline}")


if __name__ == "__main__":
    main()
