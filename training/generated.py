"""What every digit generator's card gets: the judge's verdict and a grid of its samples."""

from pathlib import Path

import numpy as np

from training import writer
from training.judge import Judge, latest_version
from training.units import to_raw

JUDGE_SAMPLES = 1000
JUDGE_MODEL = "digits-cnn"


def count(quick: bool) -> int:
    """How many samples the judge sees: 1,000, or 100 for a --quick run."""
    return 100 if quick else JUDGE_SAMPLES


def judge(output: Path, samples: np.ndarray, spec: dict, asked: np.ndarray | None = None) -> dict:
    """The judge's verdict on samples (N, 1, 8, 8) in network units; digits-cnn from `output`."""
    cnn = latest_version(output / JUDGE_MODEL)
    if cnn is None:
        return {"skipped": f"no {JUDGE_MODEL} in {output}: train it first"}
    return Judge(cnn).verdict(samples, spec, asked)


def grid(vdir: Path, samples: np.ndarray, spec: dict, rows: int = 10) -> None:
    """samples.png: the first rows*rows samples (N, 1, 8, 8), network units, in columns."""
    raw = to_raw(samples[: rows * rows, 0], spec["raw_range"], spec["network_range"])
    writer.grid_png(vdir / "samples.png", raw, spec["raw_range"], rows=rows)
