"""The versions a worker process serves: loaded lazily, at most XRAY_MAX_LOADED_MODELS at once (least
recently used goes first), each with its own engine, manifest and input gate.

A job's version is the one its batch resolved at submit time (shared/model/registry.py); None means the
worker's own folder (XRAY_MODEL_DIR, or the committed starter). A pushed version is read in place from the
registry's storage. A pinned worker (XRAY_MODEL_DIR set) serves its folder's version only; a pool worker
(XRAY_MODEL_VERSIONS) the versions listed. The first job of a cold version waits for its load; the rest find
it loaded.
"""
from __future__ import annotations

import collections
import dataclasses
import logging
import threading
import time
from pathlib import Path

from shared.model.gate import Gate
from shared.model.manifest import ArtifactError, Manifest, read_manifest, register
from shared.model.registry import version_dir
from shared.ops import metrics

log = logging.getLogger(__name__)


@dataclasses.dataclass
class Served:
    version: str
    folder: Path
    manifest: Manifest
    engine: object  # worker.engine.InferenceEngine
    gate: Gate
    load_seconds: float


class NotServedHere(Exception):
    """This worker does not serve the version (pinned or a pool): the job belongs to another worker."""


class LoadedModels:
    def __init__(self, settings, db, build):
        """``build(folder, manifest)`` makes the engine (worker/runtime.py); the folder model's manifest is
        read at once, so a worker with a broken folder refuses to start rather than fail every job."""
        self.settings, self.db, self._build = settings, db, build
        self.folder = Path(settings.model_dir)
        self.folder_version = read_manifest(self.folder).version
        self._loaded: collections.OrderedDict[str, Served] = collections.OrderedDict()
        self._lock = threading.Lock()

    def serves(self, version: str | None) -> bool:
        version = version or self.folder_version
        if self.settings.model_pinned:
            return version == self.folder_version
        listed = self.settings.served_versions
        return not listed or version in listed

    def get(self, version: str | None) -> Served:
        version = version or self.folder_version
        if not self.serves(version):
            raise NotServedHere(f"version {version} is not served by this worker "
                                f"({'pinned to ' + self.folder_version if self.settings.model_pinned else 'pool ' + self.settings.model_versions})")
        with self._lock:
            served = self._loaded.get(version)
            if served is not None:
                self._loaded.move_to_end(version)
                return served
            served = self._load(version)
            self._loaded[version] = served
            while len(self._loaded) > self.settings.max_loaded_models:
                evicted, _ = self._loaded.popitem(last=False)
                metrics.MODEL_LOADED.labels(evicted).set(0)
                log.info("unloaded model version %s (at most %d loaded per process)", evicted,
                         self.settings.max_loaded_models)
            return served

    def loaded(self) -> list[str]:
        return list(self._loaded)

    def folder_of(self, version: str) -> Path:
        if version == self.folder_version:
            return self.folder
        folder = version_dir(self.settings.storage_dir, version)
        if not folder.is_dir():
            raise ArtifactError(f"model version {version} is not in the registry's storage ({folder}) and is not "
                                f"this worker's own folder")
        return folder

    def _load(self, version: str) -> Served:
        from worker.artifact import load_artifact

        started = time.perf_counter()
        folder = self.folder_of(version)
        model, manifest = load_artifact(folder)
        if manifest.version != version:
            raise ArtifactError(f"the folder for version {version} holds version {manifest.version}")
        with self.db.session() as session:
            register(session, manifest)
        engine = self._build(model, manifest, folder)
        gate = Gate.load(folder)
        if gate.learned is None:
            log.warning("model version %s has no learned input gate (gate.json): images meet the rules only; "
                        "fit one with `xray-model gate`", version)
        seconds = time.perf_counter() - started
        metrics.MODEL_LOADED.labels(version).set(1)
        metrics.MODEL_LOAD_SECONDS.labels(version).observe(seconds)
        log.info("loaded model version %s (%s) in %.1f s on %s%s", version, manifest.name, seconds, engine.runtime,
                 "" if manifest.trained else " (UNTRAINED: predictions are meaningless)")
        return Served(version, folder, manifest, engine, gate, seconds)
