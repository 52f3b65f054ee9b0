"""python -m training <model>|all [--output DIR] [--version N] [--quick]

Trains, exports, verifies and writes each model into the repository. `all` trains the classifiers
first: digits-cnn is the judge of every generative model trained after it. After a classifier,
digits-flow or the regressor (not with --quick), `python -m training.calibrate` rewrites the
guards and explanation baselines.
"""

import argparse
import time
from pathlib import Path

import torch

from training import (
    calibrate,
    classifiers,
    diffusion,
    flow,
    gan,
    graph_models,
    regressor,
    text2img,
    translation,
    vae,
)

# name -> (module, config); the order of `all`
MODELS = {
    "digits-shallow": (classifiers, classifiers.CONFIGS["digits-shallow"]),
    "digits-deep": (classifiers, classifiers.CONFIGS["digits-deep"]),
    "digits-cnn": (classifiers, classifiers.CONFIGS["digits-cnn"]),
    "diabetes-regressor": (regressor, regressor.Config()),
    "digits-gan": (gan, gan.Config()),
    "digits-vae": (vae, vae.Config()),
    "digits-flow": (flow, flow.CONFIGS["digits-flow"]),
    "moons-flow": (flow, flow.CONFIGS["moons-flow"]),
    "digits-diffusion": (diffusion, diffusion.Config()),
    "digits-text2img": (text2img, text2img.Config()),
    "en-fr-numbers": (translation, translation.Config()),
    "graph-gcn": (graph_models, "graph-gcn"),
    "graph-gcn-deep": (graph_models, "graph-gcn-deep"),
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m training", description=__doc__.split("\n")[0])
    parser.add_argument("model", nargs="+", choices=[*MODELS, "all"], help="one or more models, or all")
    parser.add_argument("--output", type=Path, default=Path("models"),
                        help="the model repository root (default: models)")
    parser.add_argument("--version", type=int, default=None,
                        help="version folder to write (default: the next integer)")
    parser.add_argument("--quick", action="store_true", help="a few steps only, for tests")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default: 2)")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    names = list(MODELS) if "all" in args.model else list(dict.fromkeys(args.model))
    start = time.time()
    for name in names:
        module, config = MODELS[name]
        vdir = module.main(config, args.output, version=args.version, quick=args.quick)
        print(f"{name}: wrote {vdir} ({time.time() - start:.0f} s so far)")
    # A retrained classifier, flow or regressor loses its guard or explanation baseline otherwise.
    # Not after --quick: its few-step models only prove the contract (tests/training/test_quick.py).
    if not args.quick and set(names) & {*calibrate.CLASSIFIERS, calibrate.GUARD_MODEL, calibrate.REGRESSOR}:
        calibrate.main(["--output", str(args.output)])
    print(f"done in {time.time() - start:.0f} s")


if __name__ == "__main__":
    main()
