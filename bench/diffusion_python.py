"""The Python cost of a diffusion step, in process, without the denoiser: one generation's
`diffusion.sample()` loop against a Cohort holding G generations (service/sampling/cohort.py).

    .venv/bin/python bench/diffusion_python.py [--repeats 5]

eps is a constant array, so only the sampler's own work is timed: per step for the cohort, per
generation per step for the solo loop. Each number is the best of --repeats (the least disturbed
by other work on the machine).
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from service.sampling import cohort
from service.sampling.diffusion import sample, schedule

BETAS = np.linspace(1e-4, 0.02, 1000)
SHAPE = (1, 8, 8)
STEPS = 50


def solo_us_per_step(runs: int = 100) -> float:
    eps = np.zeros((1, *SHAPE), np.float32)
    started = time.perf_counter()
    for seed in range(runs):
        gen = sample(BETAS, (1, *SHAPE), steps=STEPS, sampler="ddim", null_label=10, seed=seed)
        next(gen)
        try:
            while True:
                gen.send(eps)
        except StopIteration:
            pass
    return (time.perf_counter() - started) / runs / STEPS * 1e6


def cohort_us_per_step(generations: int, runs: int = 20) -> float:
    """The request makes its member (x_T, its labels) before it joins: not timed here."""
    eps = np.zeros((generations, *SHAPE), np.float32)
    plan = schedule(BETAS, STEPS, "ddim")  # a model computes it once per (steps, sampler, eta)
    elapsed = 0.0
    for _ in range(runs):
        members = [cohort.member(plan, (1, *SHAPE), null_label=10, seed=k) for k in range(generations)]
        started = time.perf_counter()
        group = cohort.Cohort(SHAPE, (-1.0, 1.0))
        group.join(*members)
        while len(group):
            group.call()
            group.update(eps)
        elapsed += time.perf_counter() - started
    return elapsed / runs / STEPS * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    solo = min(solo_us_per_step() for _ in range(args.repeats))
    print(f"{STEPS} ddim steps, samples {SHAPE}, best of {args.repeats}\n")
    print("| sampler | generations | µs of Python per step | per generation per step |")
    print("|---|---:|---:|---:|")
    print(f"| diffusion.sample(), one loop per generation | 1 | {solo:.0f} | {solo:.0f} |")
    for generations in (1, 4, 16, 64):
        us = min(cohort_us_per_step(generations) for _ in range(args.repeats))
        print(f"| Cohort (its join and leave included) | {generations} | {us:.0f} | {us / generations:.1f} |")


if __name__ == "__main__":
    main()
