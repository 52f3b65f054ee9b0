"""The judge: digits-cnn, run from its ONNX file, scores generated digits. numpy + onnxruntime only.

It stands in for FID / Inception Score at 8x8: the score is the mean top-class probability
over the samples, and the judged labels must cover all ten classes, none under MIN_SHARE of
the samples, so one perfect digit drawn forever fails (mode collapse). For conditional samples
it also reports how often the judged label is the asked one.
"""

from pathlib import Path

import numpy as np
import onnxruntime as ort
import yaml

from training.units import to_network, to_raw

MIN_SHARE = 0.04
CHUNK = 256


def latest_version(model_dir: Path) -> Path | None:
    """The highest integer version folder of a model, or None."""
    if not model_dir.is_dir():
        return None
    versions = [p for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit()]
    return max(versions, key=lambda p: int(p.name), default=None)


class Judge:
    """digits-cnn from one version folder (its config.yaml says its units and labels)."""

    def __init__(self, cnn_version_dir: Path):
        config = yaml.safe_load((cnn_version_dir / "config.yaml").read_text(encoding="utf-8"))
        self.spec = config["data"]
        self.labels = config["labels"]
        graph = config.get("graphs", {}).get("model", "model.onnx")
        self.session = ort.InferenceSession(str(cnn_version_dir / graph),
                                            providers=["CPUExecutionProvider"])
        # Named in cards as repository/model/version ("models/digits-cnn/1"), never the absolute
        # path: a card is committed, and must not carry the build machine's folders.
        self.source = "/".join(cnn_version_dir.resolve().parts[-3:])

    def probabilities(self, samples: np.ndarray, spec: dict) -> np.ndarray:
        """Class probabilities (N, 10) of samples given in the network units of `spec`."""
        raw = to_raw(samples, spec["raw_range"], spec["network_range"])
        raw = np.clip(raw, *self.spec["raw_range"])  # what a user would see as pixels
        x = to_network(raw, self.spec["raw_range"], self.spec["network_range"])
        x = x.reshape(len(x), *self.spec["shape"])  # (N, 1, 8, 8)
        name = self.session.get_inputs()[0].name
        logits = np.concatenate([self.session.run(None, {name: x[i:i + CHUNK]})[0]
                                 for i in range(0, len(x), CHUNK)])  # (N, 10)
        logits = logits - logits.max(axis=1, keepdims=True)
        e = np.exp(logits)
        return e / e.sum(axis=1, keepdims=True)

    def verdict(self, samples: np.ndarray, spec: dict, asked: np.ndarray | None = None) -> dict:
        """Score, class histogram, coverage and (for conditional samples) agreement."""
        probs = self.probabilities(samples, spec)
        top = probs.argmax(axis=1)
        histogram = np.bincount(top, minlength=len(self.labels))
        shares = histogram / len(top)
        result = {
            "samples": len(top),
            "score": float(probs.max(axis=1).mean()),
            "histogram": {label: int(n) for label, n in zip(self.labels, histogram)},
            "min_class_share": float(shares.min()),
            "covers_all_classes": bool(shares.min() >= MIN_SHARE),
            "judge": self.source,
        }
        if asked is not None:
            result["agreement"] = float(np.mean(top == asked))
        return result
