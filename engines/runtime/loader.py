"""Find engines (bundled + the user's directory), choose a backend for each, load and warm them.

Engines are directories holding an `engine.toml`: the bundled ones under `engines/bundled/`
and, when configured, every subdirectory of `settings.engines.user_dir`. A user engine with the
name of a bundled one replaces it (so a retrained `avfusion` drops in without code changes).

A backend is chosen per engine by the configured preference order (or the per-engine override):
the first that is available on this machine, supports the engine, loads and warms up. Every
backend passed over is reported with the reason, so `list` and the service log say why an
engine runs on ONNX Runtime and not TensorRT.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engines.config import EnginesConfig
from engines.runtime.backends import BACKENDS, Backend
from engines.runtime.backends.onnxruntime_backend import OnnxRuntimeBackend
from engines.runtime.engine import Engine
from engines.runtime.interface import EngineError, ManifestError
from engines.runtime.manifest import MANIFEST_FILE, Manifest, load_manifest

logger = logging.getLogger(__name__)

BUNDLED_DIR = Path(__file__).resolve().parent.parent / "bundled"


@dataclass(frozen=True, slots=True)
class Discovered:
    """Engines found: valid manifests by name, and the manifest files that failed, with why."""

    manifests: dict[str, Manifest]
    origins: dict[str, str]  # name -> "bundled" | "user"
    errors: dict[Path, str]


@dataclass(slots=True)
class LoadReport:
    """How one engine was loaded: the backend that runs it and those passed over."""

    engine: str
    backend: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    load_s: float = 0.0
    warmup_s: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready view."""
        return {
            "engine": self.engine,
            "backend": self.backend,
            "details": self.details,
            "skipped": self.skipped,
            "load_s": round(self.load_s, 3),
            "warmup_s": round(self.warmup_s, 3),
        }


def manifest_files(user_dir: Path | None) -> list[tuple[Path, str]]:
    """Every `engine.toml` to consider, bundled first, with its origin."""
    found = [(p, "bundled") for p in sorted(BUNDLED_DIR.glob(f"*/{MANIFEST_FILE}"))]
    if user_dir is not None:
        if not user_dir.is_dir():
            raise EngineError(f"engines.user_dir: {user_dir} is not a directory")
        found += [(p, "user") for p in sorted(user_dir.glob(f"*/{MANIFEST_FILE}"))]
    return found


def discover(user_dir: Path | None) -> Discovered:
    """Load every manifest; a broken one is recorded in `errors`, not fatal here."""
    manifests: dict[str, Manifest] = {}
    origins: dict[str, str] = {}
    errors: dict[Path, str] = {}
    for path, origin in manifest_files(user_dir):
        try:
            manifest = load_manifest(path)
        except ManifestError as exc:
            errors[path] = str(exc)
            continue
        if manifest.name in manifests and origin == "user":
            logger.info("user engine %s replaces the bundled one", manifest.name)
        manifests[manifest.name] = manifest
        origins[manifest.name] = origin
    return Discovered(manifests, origins, errors)


def backend_order(config: EnginesConfig, engine: str) -> list[str]:
    """Backend names to try for `engine`, checked against the registry."""
    override = config.overrides.get(engine)
    order = [override.backend] if override and override.backend else list(config.backends)
    for name in order:
        if name not in BACKENDS:
            raise EngineError(f"unknown backend {name!r} (known: {', '.join(BACKENDS)})")
    return order


def make_backend(name: str, config: EnginesConfig | None = None, engine: str = "") -> Backend:
    """A fresh backend instance by registry name, with `config`'s settings for `engine`.

    ONNX Runtime gets its intra-op thread count (`onnxruntime_threads`, per engine override
    first; 0 = the backend's auto) and `onnxruntime_spinning`; other backends their defaults.
    """
    cls = BACKENDS[name]
    if config is not None and issubclass(cls, OnnxRuntimeBackend):
        return cls(
            threads=config.onnxruntime_threads_for(engine), spinning=config.onnxruntime_spinning
        )
    return cls()


def load_engine(manifest: Manifest, config: EnginesConfig) -> tuple[Engine, LoadReport]:
    """Load and warm `manifest` on the first backend in preference order that works."""
    report = LoadReport(engine=manifest.name)
    for name in backend_order(config, manifest.name):
        configured = make_backend(name, config, manifest.name)
        backend = try_backend(manifest, name, config.cache_dir, report, configured)
        if backend is None:
            continue
        override = config.overrides.get(manifest.name)
        engine = Engine(
            manifest,
            backend,
            budget_ms=override.budget_ms if override else None,
            max_queue_delay_ms=override.max_queue_delay_ms if override else None,
            hop_s=override.hop_s if override else None,
        )
        return engine, report
    why = "; ".join(f"{k}: {v}" for k, v in report.skipped.items())
    raise EngineError(f"{manifest.name}: no backend can run it ({why})")


def try_backend(
    manifest: Manifest,
    name: str,
    cache_dir: Path,
    report: LoadReport,
    backend: Backend | None = None,
) -> Backend | None:
    """Load and warm one backend; on any failure record why in `report` and return None.

    `backend` is a preconfigured instance (e.g. torch with `compile=True`); by default a
    fresh one of the registered class `name`.
    """
    cls = type(backend) if backend is not None else BACKENDS[name]
    for check in (cls.available, lambda: cls.supports(manifest)):
        ok, why = check()
        if not ok:
            report.skipped[name] = why
            return None
    backend = backend if backend is not None else cls()
    try:
        start = time.perf_counter()
        backend.load(manifest, cache_dir)
        loaded = time.perf_counter()
        backend.warmup(manifest.batch_sizes)
        report.load_s, report.warmup_s = loaded - start, time.perf_counter() - loaded
    except Exception as exc:  # a backend failing at load/warm-up is reported, never ready
        logger.warning("%s: backend %s failed at load/warm-up: %s", manifest.name, name, exc)
        report.skipped[name] = f"failed at load/warm-up: {exc}"
        backend.close()
        return None
    report.backend = name
    report.details = backend.describe()
    return backend


def load_engines(config: EnginesConfig) -> list[tuple[Engine, LoadReport]]:
    """Load every enabled engine; a missing or broken enabled engine is an error, naming it."""
    found = discover(config.user_dir)
    loaded = []
    for name in config.enabled:
        if name not in found.manifests:
            broken = [msg for path, msg in found.errors.items() if path.parent.name == name]
            if broken:
                raise ManifestError(broken[0])
            known = ", ".join(sorted(found.manifests)) or "none"
            raise EngineError(f"engine {name!r} not found (found: {known})")
        loaded.append(load_engine(found.manifests[name], config))
    return loaded
