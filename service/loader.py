"""Build a model's entry from its folder: configs, version policy, graphs, warm-up.

Loading is blocking (ONNX Runtime builds sessions): callers run it in a thread. A reload passes
the previous entry, so unchanged versions are kept as they are, and a version whose new files
fail to load keeps serving from the files it loaded before.
"""

import logging
from concurrent.futures import Executor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from service import metrics
from service.batching import BatchPolicy
from service.config import ConfigError, ModelConfig, build_config, read_yaml
from service.datatypes import numpy_dtype
from service.errors import InvalidInput, ModelNotFound, ModelNotReady
from service.runner import GraphRunner
from service.runtime import Graph, GraphLoadError, TensorSpec
from service.settings import Settings
from service.tasks import model_class
from service.tasks.base import ServedModel

log = logging.getLogger(__name__)

CONFIG_FILE = "config.yaml"
READY, UNAVAILABLE = "READY", "UNAVAILABLE"


@dataclass
class VersionState:
    version: int
    state: str
    reason: str = ""
    model: ServedModel | None = None
    fingerprint: tuple = ()


@dataclass
class ModelEntry:
    name: str
    versions: dict[int, VersionState] = field(default_factory=dict)
    reason: str = ""  # why the model as a whole could not load (its config, no versions...)
    fingerprint: tuple = ()

    def ready_versions(self) -> list[int]:
        return sorted((v for v, s in self.versions.items() if s.state == READY), reverse=True)

    def resolve(self, version: str | None) -> ServedModel:
        """The requested version, or the highest ready one when none is named."""
        if version is None or version == "":
            latest, highest = None, 0  # a loop, not ready_versions()' sort: this runs per request
            for number, state in self.versions.items():
                if state.state == READY and number > highest:
                    latest, highest = state, number
            if latest is None:
                raise ModelNotReady(f"model '{self.name}' is not ready: {self.why_unavailable()}")
            return latest.model
        if not _is_number(version) or int(version) < 1:
            raise InvalidInput(f"version must be a positive integer, not '{version}'")
        state = self.versions.get(int(version))
        if state is None:
            raise ModelNotFound(f"model '{self.name}' has no version {int(version)} loaded")
        if state.state != READY:
            raise ModelNotReady(f"version {state.version} of model '{self.name}' is unavailable: {state.reason}")
        return state.model

    def why_unavailable(self) -> str:
        if self.reason:
            return self.reason
        reasons = [f"version {s.version}: {s.reason}" for s in self.versions.values() if s.reason]
        return "; ".join(reasons) or "no version loaded"

    def models(self) -> list[ServedModel]:
        return [s.model for s in self.versions.values() if s.model is not None]


class ModelLoader:
    """Turns folders of the repository into ModelEntries."""

    def __init__(self, root: Path, settings: Settings, executor: Executor, peers=None):
        self.root = root
        self._peers = peers  # the registry's lookup, for models that use another (a guard)
        self._settings = settings
        self._executor = executor

    def load(self, name: str, previous: ModelEntry | None = None) -> ModelEntry:
        folder = self.root / name
        entry = ModelEntry(name, fingerprint=model_fingerprint(folder))
        try:
            on_disk = scan_versions(folder)
        except OSError as exc:  # an unreadable folder fails this model, not the repository
            return self._model_failed(entry, f"{name}/ cannot be read: {exc.strerror or exc}", previous)
        try:
            model_level = read_yaml(folder / CONFIG_FILE)
            policy = build_config(model_level, {}).version_policy
        except ConfigError as exc:
            return self._model_failed(entry, str(exc), previous)
        if not on_disk:
            return self._model_failed(entry, f"no version folders (named by positive integers) in {name}/", previous)
        if policy.latest is not None:
            # "latest: N" is the N highest versions that load: a broken new version folder
            # leaves the one before it serving instead of taking the model down.
            wanted, needed = sorted(on_disk, reverse=True), policy.latest
        else:
            wanted = policy.select(on_disk)
            needed = len(wanted)
        config_stamp = _stamp(folder / CONFIG_FILE)
        for version in wanted:
            if len(entry.ready_versions()) >= needed:
                break
            fingerprint = (config_stamp, version_fingerprint(folder / str(version)))
            entry.versions[version] = self._version(name, version, model_level, fingerprint, previous)
        return entry

    def _model_failed(self, entry: ModelEntry, reason: str, previous: ModelEntry | None) -> ModelEntry:
        log.error("model %s failed to load: %s", entry.name, reason)
        metrics.MODEL_LOAD_FAILURES.labels(entry.name, "").inc()
        if previous is not None and previous.ready_versions():
            # Keep what serves; show why the new files were refused.
            kept = ModelEntry(entry.name, dict(previous.versions), fingerprint=entry.fingerprint)
            for version in kept.ready_versions():
                state = kept.versions[version]
                kept.versions[version] = VersionState(
                    version, READY, f"reload failed, serving the files loaded before: {reason}", state.model, state.fingerprint
                )
            return kept
        entry.reason = reason
        return entry

    def _version(
        self, name: str, version: int, model_level: dict, fingerprint: tuple, previous: ModelEntry | None
    ) -> VersionState:
        old = previous.versions.get(version) if previous else None
        if old is not None and old.state == READY and old.fingerprint == fingerprint:
            return old  # unchanged on disk: keep the loaded one, batcher and statistics included
        folder = self.root / name / str(version)
        try:
            config = build_config(model_level, read_yaml(folder / CONFIG_FILE))
            model = self._build(name, version, folder, config)
        except (ConfigError, GraphLoadError) as exc:
            log.error("model %s version %d failed to load: %s", name, version, exc)
            metrics.MODEL_LOAD_FAILURES.labels(name, str(version)).inc()
            if old is not None and old.state == READY:
                reason = f"reload failed, serving the files loaded before: {exc}"
                return VersionState(version, READY, reason, old.model, old.fingerprint)
            return VersionState(version, UNAVAILABLE, str(exc), fingerprint=fingerprint)
        metrics.MODEL_LOADED.labels(name, str(version), model.provider).set(1)
        log.info("model %s version %d ready on %s", name, version, model.provider)
        return VersionState(version, READY, "", model, fingerprint)

    def _build(self, name: str, version: int, folder: Path, config: ModelConfig) -> ServedModel:
        providers = config.providers or self._settings.providers
        labels = (name, str(version))
        policy = self._batch_policy(config)
        graphs: dict[str, GraphRunner] = {}
        stats = None
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
            warm_up(graph)
            runner = GraphRunner(graph, self._executor, labels, policy, stats)
            stats = runner.stats
            graphs[role] = runner
        try:
            model = model_class(config.task)(name, version, config, graphs)
        except ValueError as exc:  # a task finds its graphs do not fit its config
            raise ConfigError(str(exc)) from None
        model.peers = self._peers
        return model

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


def warm_up(graph: Graph) -> None:
    """One run on zeros of the signature, so the first request does not pay ORT's first-run cost.

    A graph may need particular sizes or values that zeros do not give; that is no reason to
    refuse it, so a failed warm-up is only logged.
    """
    try:
        graph.run({spec.name: _zeros(spec) for spec in graph.inputs})
    except Exception as exc:  # noqa: BLE001  (any failure here is only worth a log line)
        log.info("warm-up of %s skipped: %s", graph.path, str(exc).splitlines()[0][:200] if str(exc) else exc)


def _zeros(spec: TensorSpec) -> np.ndarray:
    shape = tuple(1 if d < 0 else d for d in spec.shape)
    if spec.datatype == "BYTES":
        array = np.empty(shape, dtype=object)
        array.fill(b"")
        return array
    return np.zeros(shape, dtype=numpy_dtype(spec.datatype))


def scan_versions(folder: Path) -> list[int]:
    """Version folders: positive integers (Triton ignores other folder names too)."""
    if not folder.is_dir():
        return []
    return sorted(int(p.name) for p in folder.iterdir() if p.is_dir() and _is_number(p.name) and int(p.name) > 0)


def _is_number(text: str) -> bool:
    # ASCII only: str.isdigit() is also true of "³", which int() refuses (a 500 once); and
    # short: int() refuses more than 4300 digits, and no version needs more than 18.
    return text.isascii() and text.isdigit() and len(text) <= 18


def _stamp(path: Path) -> tuple:
    try:
        stat = path.stat()
    except OSError:
        return ()
    return (stat.st_size, stat.st_mtime_ns)


def version_fingerprint(folder: Path) -> tuple:
    """Names, sizes and modification times of a version's files: changes when any file does."""
    try:
        return tuple(sorted((p.name, *_stamp(p)) for p in folder.iterdir() if p.is_file()))
    except OSError:
        return ()


def model_fingerprint(folder: Path) -> tuple:
    try:
        versions = tuple((v, version_fingerprint(folder / str(v))) for v in scan_versions(folder))
    except OSError as exc:  # unreadable: stays equal while it stays so, and polling moves on
        return ("unreadable", exc.errno)
    return (_stamp(folder / CONFIG_FILE), versions)
