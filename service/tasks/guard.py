"""The out-of-distribution guard of a classifier: a density model's log-density against a threshold.

config.yaml names the guard (a flow of the same repository) and a threshold that training
calibrated on the validation split at a stated false-positive rate (python -m training.guard).
The guard's forward pass goes through the flow's own batcher, concurrently with the classifier's.
"""

from collections.abc import Callable

import numpy as np

from service import metrics
from service.config import Guard
from service.errors import ModelNotFound, ModelNotReady

Peers = Callable[[str, str | None], object]  # (name, version) -> a loaded model of the repository


class OutOfDistributionGuard:
    def __init__(self, spec: Guard, labels: tuple[str, str]):
        if spec.model is None or spec.threshold is None:
            raise ValueError("guard: needs a model and a threshold (python -m training.calibrate writes them)")
        self.spec = spec
        self._grid = np.linspace(0.0, 100.0, len(spec.percentiles or ()))
        self._flagged = metrics.OUT_OF_DISTRIBUTION.labels(*labels)

    @property
    def refuses(self) -> bool:
        return self.spec.action == "refuse"

    async def verdicts(self, raw: np.ndarray, peers: Peers | None) -> list[dict]:
        """Per instance of raw (N, *shape): in_distribution, log_density, percentile."""
        log_p = await self._density_model(peers, raw).log_density(raw)  # (N,) raw units
        inside = log_p >= self.spec.threshold
        self._flagged.inc(int((~inside).sum()))
        verdicts = [{"in_distribution": bool(ok), "log_density": float(lp)} for ok, lp in zip(inside, log_p)]
        if self.spec.percentiles:
            # The share of validation data that is less likely: 0 below all, 100 above all.
            for verdict, pc in zip(verdicts, np.interp(log_p, self.spec.percentiles, self._grid)):
                verdict["percentile"] = round(float(pc), 2)
        return verdicts

    def refusal(self, verdict: dict) -> dict:
        """The answer of a refused instance: an error object naming the density and the threshold."""
        return {
            "error": (
                f"this input does not look like the model's training data: its log-density under "
                f"'{self.spec.model}' is {verdict['log_density']:.1f}, below the guard's threshold "
                f"{self.spec.threshold:.1f}"
            ),
            **verdict,
        }

    def _density_model(self, peers: Peers | None, raw: np.ndarray):
        version = None if self.spec.version is None else str(self.spec.version)
        if peers is None:
            raise ModelNotReady(f"the guard model '{self.spec.model}' cannot be reached")
        try:
            model = peers(self.spec.model, version)
        except ModelNotReady as exc:
            raise ModelNotReady(f"the guard model is not ready: {exc}") from None
        except ModelNotFound as exc:  # unknown model or version: a configuration fault, said as such
            raise ModelNotReady(f"the guard model '{self.spec.model}' is not available: {exc}") from None
        if not hasattr(model, "log_density"):
            raise ModelNotReady(f"the guard model '{self.spec.model}' is a {model.config.task} model, not a density model")
        if model.units.size != raw[0].size:  # a guard of another kind of data: configured wrong
            raise ModelNotReady(
                f"the guard model '{self.spec.model}' takes {model.units.size} values per instance, not {raw[0].size}"
            )
        return model
