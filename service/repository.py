"""The model repository: scan the folder, load each model's versions, hand out loaded models.

A model's name is its folder's name and requests only ever look names up in the dict built by
the scan, so nothing a client sends can reach a path outside the repository.
"""

import logging
import re
from concurrent.futures import Executor
from dataclasses import dataclass, field
from pathlib import Path

from service import metrics
from service.batching import BatchPolicy
from service.config import ConfigError, ModelConfig, build_config, read_yaml
from service.errors import InvalidInput, ModelNotFound, ModelNotReady
from service.runtime import Graph, GraphLoadError
from service.settings import Settings
from service.tasks import model_class
from service.tasks.base import GraphRunner, ServedModel

log = logging.getLogger(__name__)

MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
CONFIG_FILE = "config.yaml"

READY, UNAVAILABLE, LOADING = "READY", "UNAVAILABLE", "LOADING"


@dataclass
class VersionState:
    version: int
    state: str
    reason: str = ""
    model: ServedModel | None = None


@dataclass
class ModelEntry:
    name: str
    versions: dict[int, VersionState] = field(default_factory=dict)
    reason: str = ""  # why the model as a whole could not load (its config, no versions...)

    def ready_versions(self) -> list[int]:
        return sorted((v for v, s in self.versions.items() if s.state == READY), reverse=True)

    def resolve(self, version: str | None) -> ServedModel:
        """The requested version, or the highest ready one when none is named."""
        if version is None or version == "":
            ready = self.ready_versions()
            if not ready:
                raise ModelNotReady(f"model '{self.name}' is not ready: {self.why_unavailable()}")
            return self.versions[ready[0]].model
        if not version.isdigit() or int(version) < 1:
            raise InvalidInput(f"version must be a positive integer, not '{version}'")
        state = self.versions.get(int(version))
        if state is None:
            raise ModelNotFound(f"model '{self.name}' has no version {int(version)}")
        if state.state != READY:
            raise ModelNotReady(
                f"version {state.version} of model '{self.name}' is {state.state.lower()}: {state.reason}"
            )
        return state.model

    def why_unavailable(self) -> str:
        if self.reason:
            return self.reason
        reasons = [f"version {s.version}: {s.reason}" for s in self.versions.values() if s.reason]
        return "; ".join(reasons) or "no version loaded"


class Registry:
    """The models of one repository, by name. Built empty; `load_all` fills it."""

    def __init__(self, settings: Settings, executor: Executor):
        self.root = settings.model_repository
        self._settings = settings
        self._executor = executor
        self._models: dict[str, ModelEntry] = {}
        self.ready = False

    def names(self) -> list[str]:
        return sorted(self._models)

    def entry(self, name: str) -> ModelEntry:
        try:
            return self._models[name]
        except KeyError:
            raise ModelNotFound(f"unknown model '{name}'") from None

    def get(self, name: str, version: str | None = None) -> ServedModel:
        return self.entry(name).resolve(version)

    def index(self) -> list[dict]:
        """Triton's repository index: one row per version, or per model when none could load."""
        rows = []
        for name in self.names():
            entry = self._models[name]
            if not entry.versions:
                rows.append({"name": name, "version": "", "state": UNAVAILABLE, "reason": entry.why_unavailable()})
            for version in sorted(entry.versions):
                state = entry.versions[version]
                rows.append({"name": name, "version": str(version), "state": state.state, "reason": state.reason})
        return rows

    def load_all(self) -> None:
        """Scan the repository and load every model in it (blocking: run it in a thread)."""
        if not self.root.is_dir():
            log.error("model repository %s is not a folder; serving no models", self.root)
        for name in scan_model_names(self.root):
            self._models[name] = self._load_model(name)
        self.ready = True
        loaded = sum(len(e.ready_versions()) for e in self._models.values())
        log.info("repository %s: %d models, %d versions ready", self.root, len(self._models), loaded)

    def _load_model(self, name: str) -> ModelEntry:
        entry = ModelEntry(name)
        folder = self.root / name
        try:
            model_level = read_yaml(folder / CONFIG_FILE)
            policy = build_config(model_level, {}).version_policy
        except ConfigError as exc:
            entry.reason = str(exc)
            log.error("model %s failed to load: %s", name, exc)
            return entry
        on_disk = scan_versions(folder)
        if not on_disk:
            entry.reason = f"no version folders (named by positive integers) in {name}/"
            log.error("model %s failed to load: %s", name, entry.reason)
            return entry
        wanted = policy.select(on_disk)
        if policy.latest is not None:
            # "latest: N" is the N highest versions that load: a broken new version folder
            # leaves the previous one serving instead of taking the model down.
            wanted, needed = sorted(on_disk, reverse=True), policy.latest
        else:
            needed = len(wanted)
        for version in wanted:
            if len(entry.ready_versions()) >= needed:
                break
            entry.versions[version] = self._load_version(name, version, model_level)
        return entry

    def _load_version(self, name: str, version: int, model_level: dict) -> VersionState:
        folder = self.root / name / str(version)
        try:
            config = build_config(model_level, read_yaml(folder / CONFIG_FILE))
            model = self._build_model(name, version, folder, config)
        except (ConfigError, GraphLoadError) as exc:
            log.error("model %s version %d failed to load: %s", name, version, exc)
            metrics.MODEL_LOAD_FAILURES.labels(name, str(version)).inc()
            return VersionState(version, UNAVAILABLE, str(exc))
        metrics.MODEL_LOADED.labels(name, str(version), model.provider).set(1)
        log.info("model %s version %d ready on %s", name, version, model.provider)
        return VersionState(version, READY, "", model)

    def _build_model(self, name: str, version: int, folder: Path, config: ModelConfig) -> ServedModel:
        providers = config.providers or self._settings.providers
        labels = (name, str(version))
        policy = self._batch_policy(config)
        graphs = {}
        for role, file_name in config.graph_files().items():
            path = folder / file_name
            if not path.is_file():
                raise GraphLoadError(f"graph '{role}' file {file_name} is missing")
            graph = Graph(
                path,
                providers,
                require_first_provider=config.require_first_provider,
                intra_op_num_threads=self._settings.intra_op_num_threads,
            )
            graphs[role] = GraphRunner(graph, self._executor, labels, policy)
        try:
            return model_class(config.task)(name, version, config, graphs)
        except ValueError as exc:  # a task finds its graphs do not fit its config
            raise ConfigError(str(exc)) from None


    def _batch_policy(self, config: ModelConfig) -> BatchPolicy:
        settings = self._settings

        def pick(value, default):
            return default if value is None else value

        return BatchPolicy(
            max_batch_size=pick(config.max_batch_size, settings.max_batch_size),
            max_queue_delay_s=pick(config.max_queue_delay_ms, settings.max_queue_delay_ms) / 1000,
            preferred_batch_sizes=tuple(config.preferred_batch_sizes or ()),
            max_queue_size=pick(config.max_queue_size, settings.max_queue_size),
            max_concurrent_batches=settings.max_concurrent_batches,
        )


def scan_model_names(root: Path) -> list[str]:
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and MODEL_NAME.match(p.name))


def scan_versions(folder: Path) -> list[int]:
    """Version folders: positive integers (Triton ignores other folder names too)."""
    return sorted(
        int(p.name) for p in folder.iterdir() if p.is_dir() and p.name.isdigit() and int(p.name) > 0
    )
