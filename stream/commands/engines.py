"""`scenestream engines list|build|verify|bench`.

- `list`: the engines found (bundled and the user's directory), their labels and windows, the
  backends available on this machine (and why not), which of them can run each engine.
- `build`: load (TensorRT: build and cache) and warm every selected backend of every engine.
- `verify`: backend parity on random and realistic inputs; non-zero exit on any mismatch.
- `bench`: p50/p99 latency and windows/s per backend per batch size, through the engine runtime;
  ONNX Runtime at each `--threads N` asked (default `engines.onnxruntime_threads`), the intra-op
  thread count on every row and in the JSON (`threads`, `spinning`; null for backends without
  them); `engines.onnxruntime_spinning = false` in the configuration times sleeping threads.
- `import`: a pretrained model → an engine directory (`stream/commands/engines_import.py`).

`--json PATH` also writes the results as JSON. Progress goes to stdout as it happens.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from engines.config import EnginesConfig
from engines.errors import UserError
from engines.runtime.backends import BACKENDS, Backend
from engines.runtime.backends.onnxruntime_backend import OnnxRuntimeBackend
from engines.runtime.engine import Engine
from engines.runtime.interface import EngineError, ManifestError
from engines.runtime.latency import bench_engine
from engines.runtime.loader import Discovered, LoadReport, discover, make_backend, try_backend
from engines.runtime.manifest import Manifest
from engines.runtime.parity import check_parity, tolerance_for
from stream.config import ConfigError, load_settings


def run(args: argparse.Namespace) -> int:
    """Entry point for `scenestream engines ...`."""
    if args.engines_command == "import":
        from stream.commands import engines_import

        return engines_import.run(args)
    try:
        config = load_settings(args.config).engines
        found = discover(config.user_dir)
        manifests = _select(found, args.names)
        backends = _backend_names(args.backend, config)
        command = args.engines_command
        if command == "list":
            result: dict[str, Any] = _list(found, manifests)
            code = 0
        elif command == "build":
            result, code = _build(manifests, backends, config)
        elif command == "verify":
            result, code = _verify(manifests, backends, config)
        else:
            result, code = _bench(
                manifests, backends, config, args.batch, args.iterations, args.threads
            )
    except (ConfigError, ManifestError, EngineError) as exc:
        raise UserError(str(exc)) from exc
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2, default=str) + "\n")
        _say(f"wrote {args.json}")
    return code


def _say(text: str) -> None:
    print(text, flush=True)


def _select(found: Discovered, names: list[str]) -> list[Manifest]:
    for path, error in found.errors.items():
        print(f"warning: {path}: skipped: {error}", file=sys.stderr)
    unknown = [n for n in names if n not in found.manifests]
    if unknown:
        known = ", ".join(sorted(found.manifests)) or "none"
        raise UserError(f"unknown engine(s): {', '.join(unknown)} (found: {known})")
    return [found.manifests[n] for n in (names or sorted(found.manifests))]


def _backend_names(requested: list[str] | None, config: EnginesConfig) -> list[str]:
    names = requested or list(config.backends)
    unknown = [n for n in names if n not in BACKENDS]
    if unknown:
        raise UserError(f"unknown backend(s): {', '.join(unknown)} (known: {', '.join(BACKENDS)})")
    return names


def backends_here() -> dict[str, dict[str, Any]]:
    """Each registered backend: available here or why not, and what it would run on."""
    out: dict[str, dict[str, Any]] = {}
    for name, cls in BACKENDS.items():
        ok, why = cls.available()
        out[name] = {"available": ok, "why_not": None if ok else why, **_runtime_info(name)}
    return out


def _runtime_info(name: str) -> dict[str, Any]:
    try:
        if name == "onnxruntime":
            import onnxruntime as ort

            return {"version": ort.__version__, "providers": ort.get_available_providers()}
        if name == "torch":
            import torch

            cuda = torch.cuda.is_available()
            gpu = torch.cuda.get_device_name() if cuda else None
            return {"version": torch.__version__, "cuda": cuda, "gpu": gpu}
    except ImportError:
        pass
    return {}


def _list(found: Discovered, manifests: list[Manifest]) -> dict[str, Any]:
    here = backends_here()
    _say("Backends here:")
    for name, info in here.items():
        state = "yes" if info["available"] else f"no  ({info['why_not']})"
        extra = info.get("providers") or info.get("gpu") or ""
        _say(f"  {name:<12} {state} {info.get('version', '')} {extra}".rstrip())
    _say("Engines:")
    engines = []
    for m in manifests:
        spec, eng = m.window_spec(), m.doc.engine
        runs = {n: cls.supports(m) for n, cls in BACKENDS.items()}
        row = {
            "name": m.name,
            "version": eng.version,
            "origin": found.origins[m.name],
            "path": str(m.path),
            "labels": list(m.labels),
            "window_s": spec.length_s,
            "hop_s": spec.hop_s,
            "batch_sizes": list(m.batch_sizes),
            "budget_ms": eng.budget_ms,
            "stateful": m.stateful,
            "detections": (
                {"layout": m.doc.detections.layout, "classes": len(m.doc.detections.class_names)}
                if m.doc.detections
                else None
            ),
            "backends": {
                n: {"supports": ok, "why_not": why or None} for n, (ok, why) in runs.items()
            },
        }
        engines.append(row)
        usable = [n for n, (ok, _) in runs.items() if ok and here[n]["available"]]
        _say(f"  {m.name} {eng.version} ({row['origin']}): {eng.description}")
        _say(f"    labels: {', '.join(m.labels)}")
        if m.doc.detections:
            det = m.doc.detections
            _say(f"    detections: {det.layout} output, {len(det.class_names)} classes, tracked")
        _say(
            f"    window {spec.length_s} s, hop {spec.hop_s} s, batch sizes {list(m.batch_sizes)}, "
            f"budget {eng.budget_ms:g} ms{', stateful' if m.stateful else ''}"
        )
        _say(f"    runs here on: {', '.join(usable) or 'nothing'}")
    errors = {str(p): e for p, e in found.errors.items()}
    return {"backends": here, "engines": engines, "errors": errors}


def _load_all(
    manifest: Manifest, names: list[str], config: EnginesConfig
) -> tuple[dict[str, Backend], LoadReport]:
    """Every selected backend that loads and warms for `manifest` (progress printed)."""
    report = LoadReport(engine=manifest.name)
    loaded: dict[str, Backend] = {}
    for name in names:
        backend = _load_one(
            manifest, name, make_backend(name, config, manifest.name), config, report
        )
        if backend is not None:
            loaded[name] = backend
    return loaded, report


def _load_one(
    manifest: Manifest, name: str, backend: Backend, config: EnginesConfig, report: LoadReport
) -> Backend | None:
    """Load and warm one configured backend (progress printed); None if it cannot run here."""
    _say(f"  {manifest.name}: loading on {name} ...")
    ready = try_backend(manifest, name, config.cache_dir, report, backend)
    if ready is None:
        _say(f"  {manifest.name}: {name} skipped: {report.skipped[name]}")
        return None
    desc = ready.describe()
    threads = desc.get("intra_op_threads")
    on = f", {threads} intra-op thread{'s' if threads != 1 else ''}" if threads else ""
    _say(
        f"  {manifest.name}: {name} ready ({desc.get('provider')} on {desc.get('device')}{on}; "
        f"load {report.load_s:.2f} s, warm-up {report.warmup_s:.2f} s)"
    )
    return ready


def _build(
    manifests: list[Manifest], names: list[str], config: EnginesConfig
) -> tuple[dict[str, Any], int]:
    results, code = [], 0
    for m in manifests:
        loaded, report = _load_all(m, names, config)
        code = code or (0 if loaded else 1)
        results.append(
            {
                "engine": m.name,
                "ready": {n: b.describe() for n, b in loaded.items()},
                "skipped": report.skipped,
            }
        )
        for backend in loaded.values():
            backend.close()
    return {"build": results}, code


def _verify(
    manifests: list[Manifest], names: list[str], config: EnginesConfig
) -> tuple[dict[str, Any], int]:
    results, code = [], 0
    for m in manifests:
        loaded, report = _load_all(m, names, config)
        cases = check_parity(m, loaded)
        limit = tolerance_for(m)
        if len(loaded) < 2:
            only = ", ".join(loaded) or "no backend"
            _say(f"  {m.name}: only {only} runs here: nothing to compare")
        for c in cases:
            mark = "ok  " if c.ok else "FAIL"
            _say(
                f"  {mark} {m.name} {c.backend} vs {c.reference} {c.inputs:<9} batch {c.batch:<3} "
                f"max abs diff {c.max_abs_diff:.2e} (limit {limit:.0e})"
            )
        ok = all(c.ok for c in cases) and bool(loaded)
        code = code or (0 if ok else 1)
        results.append(
            {
                "engine": m.name,
                "backends": list(loaded),
                "skipped": report.skipped,
                "tolerance": limit,
                "cases": [c.as_dict() for c in cases],
                "ok": ok,
            }
        )
        for backend in loaded.values():
            backend.close()
    return {"verify": results}, code


def _bench_variants(
    manifest: Manifest, names: list[str], config: EnginesConfig, threads: list[int] | None
) -> list[tuple[str, Backend]]:
    """(backend name, configured instance) to time: ONNX Runtime once per thread count asked."""
    out: list[tuple[str, Backend]] = []
    for name in names:
        if name == "onnxruntime" and threads:
            spin = config.onnxruntime_spinning
            out += [
                (name, OnnxRuntimeBackend(threads=n, spinning=spin)) for n in dict.fromkeys(threads)
            ]
        else:
            out.append((name, make_backend(name, config, manifest.name)))
    return out


def _bench(
    manifests: list[Manifest],
    names: list[str],
    config: EnginesConfig,
    batches: list[int] | None,
    iterations: int,
    threads: list[int] | None = None,
) -> tuple[dict[str, Any], int]:
    """Time each backend (ONNX Runtime at each `threads`), one loaded at a time."""
    rows: list[dict[str, Any]] = []
    for m in manifests:
        sizes = sorted(set(batches)) if batches else list(m.batch_sizes)
        report = LoadReport(engine=m.name)
        for name, configured in _bench_variants(m, names, config, threads):
            backend = _load_one(m, name, configured, config, report)
            if backend is None:
                continue
            details = backend.describe()
            n_threads = details.get("intra_op_threads")
            spinning = details.get("intra_op_spinning")
            no_spin = " (no spin)" if n_threads and n_threads > 1 and spinning is False else ""
            engine = Engine(m, backend)
            for batch in sizes:
                if batch > m.batch_sizes[-1]:
                    _say(
                        f"  {m.name}: batch {batch} is over the largest built size; split in calls"
                    )
                r = bench_engine(engine, batch, iterations)
                chunks = f", {r.chunks_per_s:.0f} chunks/s" if r.chunks_per_s else ""
                _say(
                    f"  {m.name:<12} {name:<12} threads {n_threads or '-':<3} batch {batch:<3} "
                    f"p50 {r.p50_ms:8.2f} ms  p99 {r.p99_ms:8.2f} ms  "
                    f"{r.windows_per_s:9.1f} windows/s{chunks}{no_spin}"
                )
                rows.append(
                    {**r.as_dict(), "threads": n_threads, "spinning": spinning, "details": details}
                )
            backend.close()
    return {"bench": rows, "iterations": iterations}, 0 if rows else 1


def default_json_path() -> Path:
    """Where `make bench` writes the engine benchmark."""
    return Path("artifacts/engines-bench.json")
