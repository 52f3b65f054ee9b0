"""The text-to-image judge: draw from the ONNX graphs through the service's sampler, then check each
sample against its caption. numpy + onnxruntime only, so the tests recompute it without torch.

digits-cnn reads the digit; the caption measures (training/captions.py) read the stroke weight
and slant, against the terciles of the captioned digit (of the judged one where a caption names
no digit). Each agreement counts only the captions that name that attribute.
"""

from pathlib import Path

import numpy as np
import onnxruntime as ort
import yaml

from service.sampling.diffusion import run, sample
from service.sampling.prompts import Vocabulary, table
from training.captions import Asked, Thresholds
from training.judge import MIN_SHARE, Judge
from training.units import to_raw


class OnnxTextToImage:
    """A version folder's text encoder and denoiser, sampled as the service samples them."""

    def __init__(self, vdir: Path):
        self.config = yaml.safe_load((vdir / "config.yaml").read_text(encoding="utf-8"))
        graphs = self.config["graphs"]
        self.encoder = ort.InferenceSession(str(vdir / graphs["text_encoder"]),
                                            providers=["CPUExecutionProvider"])
        self.denoiser = ort.InferenceSession(str(vdir / graphs["denoiser"]),
                                             providers=["CPUExecutionProvider"])
        max_words = self.encoder.get_inputs()[0].shape[1]
        self.vocabulary = Vocabulary(self.config["vocabulary"], max_words)
        self.spec = self.config["data"]

    def draw(self, prompts: list[str], guidance: float, steps: int | None = None,
             sampler: str = "ddpm", seed: int = 0) -> np.ndarray:
        """Samples (N, 1, 8, 8) in network units, one per prompt: encode once, then denoise."""
        distinct, rows = table(prompts)
        tokens = self.vocabulary.encode(distinct)  # (P + 1, L), the null caption last
        encoded = self.encoder.run(None, {self.encoder.get_inputs()[0].name: tokens})[0]  # (P+1, D)
        names = [i.name for i in self.denoiser.get_inputs()]

        def denoise(x_t, t, row):
            return self.denoiser.run(None, dict(zip(names, (x_t, t, encoded[row]))))[0]

        gen = sample(self.config["schedule"]["betas"], (len(prompts), *self.spec["shape"]),
                     steps=steps, sampler=sampler, labels=rows, null_label=len(distinct) - 1,
                     guidance=0.0 if rows is None else guidance,
                     clip=tuple(self.spec["network_range"]), seed=seed)
        return run(gen, denoise)


def verdict(judge: Judge, samples: np.ndarray, spec: dict, asked: Asked,
            thresholds: Thresholds) -> dict:
    """Digit, weight and slant agreement of samples (N, 1, 8, 8, network units) with captions."""
    top = judge.probabilities(samples, spec).argmax(axis=1)  # (N,)
    raw = np.clip(to_raw(samples, spec["raw_range"], spec["network_range"]), *spec["raw_range"])
    read_as = np.where(asked.digit >= 0, asked.digit, top)  # whose terciles to measure against
    weight, slant = thresholds.measure(raw, read_as)
    histogram = np.bincount(top, minlength=10)
    shares = histogram / len(top)

    def agreement(measured, wanted):
        named = wanted >= 0
        return {"agreement": float(np.mean(measured[named] == wanted[named])),
                "captions": int(named.sum())}

    return {
        "samples": len(top),
        "digit": agreement(top, asked.digit),
        "weight": agreement(weight, asked.weight),
        "slant": agreement(slant, asked.slant),
        "histogram": {str(c): int(n) for c, n in enumerate(histogram)},
        "min_class_share": float(shares.min()),
        "covers_all_classes": bool(shares.min() >= MIN_SHARE),
        "judge": judge.source,
    }
