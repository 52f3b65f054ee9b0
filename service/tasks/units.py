"""A DataSpec's linear map between the users' raw units and the network's (docs/MODEL_REPOSITORY.md)."""

import math

import numpy as np

from service.config import DataSpec


class Units:
    """network = (raw - r0) / (r1 - r0) * (n1 - n0) + n0; the identity without ranges."""

    def __init__(self, spec: DataSpec):
        self.shape = tuple(spec.shape)
        self.size = math.prod(self.shape)
        self.image = spec.image
        self.raw_range = spec.raw_range
        (r0, r1), (n0, n1) = spec.raw_range or (0.0, 1.0), spec.network_range or (0.0, 1.0)
        self._raw_low, self._net_low = r0, n0
        self._scale = (n1 - n0) / (r1 - r0)  # d network / d raw, the same on every axis
        self.network_range = spec.network_range

    def to_network(self, raw: np.ndarray) -> np.ndarray:
        return ((np.asarray(raw, np.float64) - self._raw_low) * self._scale + self._net_low).astype(np.float32)

    def to_raw(self, network: np.ndarray) -> np.ndarray:
        """Samples the network made, in raw units, kept inside raw_range (pixels 0..16 stay so)."""
        raw = (np.asarray(network, np.float64) - self._net_low) / self._scale + self._raw_low
        if self.raw_range is not None:
            raw = np.clip(raw, *self.raw_range)
        return raw.astype(np.float32)

    @property
    def log_jacobian(self) -> float:
        """log |d network / d raw| of one whole sample: turns a network density into a raw one."""
        return self.size * math.log(self._scale)

    def ink(self, raw: np.ndarray) -> np.ndarray:
        """Raw pixel values as ink in [0, 1] (1 is the top of raw_range; [0, 1] without a range)."""
        low, high = self.raw_range or (0.0, 1.0)
        return np.clip((np.asarray(raw, np.float64) - low) / (high - low), 0.0, 1.0)

    def from_ink(self, ink: np.ndarray) -> np.ndarray:
        low, high = self.raw_range or (0.0, 1.0)
        return (low + np.asarray(ink, np.float64) * (high - low)).astype(np.float32)
