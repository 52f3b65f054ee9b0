"""The model repository: which models are loaded, and Triton's control modes over them.

A model's name is its folder's name. Requests only look names up among the folders a scan
found, so nothing a client sends can reach a path outside the repository. Loads build the new
entry beside the old one and swap it in with one assignment: requests in flight finish on the
version they resolved, and no request sees a half-loaded model.
"""

import asyncio
import logging
import re
from concurrent.futures import Executor
from pathlib import Path

from service import metrics
from service.errors import InvalidInput, ModelControlDisabled, ModelNotFound, ModelNotReady
from service.loader import READY, UNAVAILABLE, ModelEntry, ModelLoader, model_fingerprint
from service.settings import Settings
from service.tasks.base import ServedModel

log = logging.getLogger(__name__)

MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class Registry:
    """The loaded models of one repository, by name. Built empty; `load_all` fills it."""

    def __init__(self, settings: Settings, executor: Executor):
        self.root = settings.model_repository
        self.mode = settings.model_control_mode
        self._startup_models = settings.load_model
        self._loader = ModelLoader(self.root, settings, executor, peers=self.get)
        self._models: dict[str, ModelEntry] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self.ready = False

    # ------------------------------------------------------------------ lookups
    def names(self) -> list[str]:
        return sorted(self._models)

    def entry(self, name: str) -> ModelEntry:
        try:
            return self._models[name]
        except KeyError:
            raise ModelNotFound(f"unknown model '{name}'; {self._listing()}") from None

    def _listing(self, most: int = 20) -> str:
        """The loaded models' names, for an error that should say what the client can ask for."""
        names = self.names()
        if not names:
            return "no model is loaded (POST /v2/repository/index lists the repository)"
        if len(names) <= most:
            return f"the models are: {', '.join(names)}"
        return f"the models include: {', '.join(names[:most])} (POST /v2/repository/index lists all {len(names)})"

    def get(self, name: str, version: str | None = None) -> ServedModel:
        return self.entry(name).resolve(version)

    def loaded_models(self) -> list[ServedModel]:
        return [model for name in self.names() for model in self._models[name].models()]

    def index(self, ready_only: bool = False) -> list[dict]:
        """Triton's repository index: a row per version, and one per model that has none loaded."""
        rows = []
        try:
            on_disk = scan_model_names(self.root)
        except OSError:  # unreadable now: the loaded models are still worth listing
            on_disk = []
        for name in sorted(set(on_disk) | set(self._models)):
            entry = self._models.get(name)
            if entry is None:
                rows.append({"name": name, "version": "", "state": UNAVAILABLE, "reason": "unloaded"})
                continue
            if not entry.versions:
                rows.append({"name": name, "version": "", "state": UNAVAILABLE, "reason": entry.why_unavailable()})
            for version in sorted(entry.versions):
                state = entry.versions[version]
                rows.append({"name": name, "version": str(version), "state": state.state, "reason": state.reason})
        return [row for row in rows if row["state"] == READY] if ready_only else rows

    # ------------------------------------------------------------------ loading
    def load_all(self) -> None:
        """Load what the control mode says at start (blocking: run it in a thread)."""
        try:
            names = self._names_to_load_at_start()
            if not self.root.is_dir():
                log.error("model repository %s is not a folder; serving no models", self.root)
        except OSError as exc:  # unreadable: say so, and still become ready, as for a missing one
            log.error("model repository %s cannot be read (%s); serving no models", self.root, exc)
            names = []
        for name in names:
            self._models[name] = self._loader.load(name)
        self.ready = True
        loaded = sum(len(e.ready_versions()) for e in self._models.values())
        log.info("repository %s: %d models, %d versions ready", self.root, len(self._models), loaded)

    def _names_to_load_at_start(self) -> list[str]:
        on_disk = scan_model_names(self.root)
        if self.mode != "explicit" or "*" in self._startup_models:
            return on_disk
        missing = [n for n in self._startup_models if n not in on_disk]
        if missing:
            log.error("--load-model names models that are not in the repository: %s", ", ".join(missing))
        return [n for n in self._startup_models if n in on_disk]

    async def load(self, name: str) -> ModelEntry:
        """Load or reload one model from disk (explicit mode); 400 with the reason when it fails."""
        self._require_mode("explicit", "load")
        try:
            on_disk = scan_model_names(self.root)
        except OSError as exc:
            raise ModelNotReady(f"the model repository cannot be read: {exc.strerror or exc}") from None
        if name not in on_disk:
            raise ModelNotFound(f"the repository has no model folder named '{name}'")
        entry = await self._reload(name)
        if not entry.ready_versions():
            raise InvalidInput(f"failed to load '{name}': {entry.why_unavailable()}")
        problems = [s for s in entry.versions.values() if s.reason]
        if problems:
            raise InvalidInput(f"'{name}' loaded with problems: " + "; ".join(f"version {s.version}: {s.reason}" for s in problems))
        return entry

    async def unload(self, name: str) -> None:
        self._require_mode("explicit", "unload")
        async with self._lock(name):
            entry = self._models.pop(name, None)
        if entry is None:
            raise ModelNotFound(f"model '{name}' is not loaded")
        _retire(entry, keep=None)

    async def poll(self) -> None:
        """One look at the repository: load new models and versions, reload changed, drop removed."""
        on_disk = set(scan_model_names(self.root))
        for name in sorted(on_disk):
            entry = self._models.get(name)
            fingerprint = await asyncio.to_thread(model_fingerprint, self.root / name)
            if entry is None or entry.fingerprint != fingerprint:
                await self._reload(name)
        for name in sorted(set(self._models) - on_disk):
            async with self._lock(name):
                entry = self._models.pop(name, None)
            if entry is not None:
                log.info("model %s left the repository; unloaded", name)
                _retire(entry, keep=None)

    async def poll_forever(self, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            try:
                await self.poll()
            except Exception:  # a bad moment on disk must not end polling
                log.exception("polling the repository failed; trying again in %ss", interval_s)

    async def _reload(self, name: str) -> ModelEntry:
        async with self._lock(name):
            previous = self._models.get(name)
            entry = await asyncio.to_thread(self._loader.load, name, previous)
            self._models[name] = entry  # the swap: one assignment
        if previous is not None:
            _retire(previous, keep=entry)
        return entry

    def _lock(self, name: str) -> asyncio.Lock:
        return self._locks.setdefault(name, asyncio.Lock())

    def _require_mode(self, mode: str, action: str) -> None:
        if self.mode != mode:
            raise ModelControlDisabled(
                f"cannot {action} models: the server runs with --model-control-mode {self.mode} "
                f"(start it with --model-control-mode {mode} to {action} through the API)"
            )


def _retire(old: ModelEntry, keep: ModelEntry | None) -> None:
    """Let the versions that the new entry no longer uses finish their queues and go."""
    kept = {id(m) for m in keep.models()} if keep is not None else set()
    for state in old.versions.values():
        model = state.model
        if model is None or id(model) in kept:
            continue
        for runner in model.graphs.values():
            runner.close()
        try:
            metrics.MODEL_LOADED.remove(model.name, str(model.version), model.provider)
        except KeyError:
            pass


def scan_model_names(root: Path) -> list[str]:
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and MODEL_NAME.match(p.name))
