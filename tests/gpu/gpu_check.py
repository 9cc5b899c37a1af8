"""One command for a machine with an NVIDIA GPU: parity + engine benchmark, every backend there.

    python tests/gpu/gpu_check.py --out artifacts/gpu-report.json     (or: make gpu-check)

For every engine found (bundled + `--user-dir`), every backend variant that imports and loads
here is compared with ONNX Runtime on the CPU (the reference: raw outputs, random and realistic
inputs, smallest and largest batch) and timed through the engine runtime per batch size:
ONNX Runtime CPU, ONNX Runtime CUDA (when its provider really loads), torch eager, torch
compiled, TensorRT and TensorRT with CUDA graphs. The JSON report holds the environment,
parity cases, timings and the windows/s ratio of each backend to torch eager. It runs on a CPU
machine too (GPU variants are reported as skipped, with why), and it stops timing once
`--budget-s` is spent so that the whole run stays under five minutes. Exit status 1 when any
parity case fails.

TF32 is switched off in torch (and cleared in TensorRT fp32 builds) so that fp32 parity is
measured against fp32, not against TensorFloat-32's 10-bit mantissa.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
import time
from pathlib import Path
from typing import Any

from engines.runtime.backends.base import Backend
from engines.runtime.backends.onnxruntime_backend import OnnxRuntimeBackend
from engines.runtime.backends.tensorrt_backend import TensorRTBackend
from engines.runtime.backends.torch_backend import TorchBackend
from engines.runtime.engine import Engine
from engines.runtime.latency import bench_engine
from engines.runtime.loader import LoadReport, discover, try_backend
from engines.runtime.manifest import Manifest
from engines.runtime.parity import check_parity, tolerance_for
from stream.commands.engines import backends_here


def variants(cuda: bool) -> dict[str, Backend]:
    """Backend variants to try, the CPU reference first."""
    out: dict[str, Backend] = {"onnxruntime-cpu": OnnxRuntimeBackend(use_gpu=False)}
    if cuda:
        out["onnxruntime-cuda"] = OnnxRuntimeBackend(use_gpu=True)
    out["torch-eager"] = TorchBackend()
    if cuda:  # compiling on a CPU costs minutes for little; only worth it on the GPU
        out["torch-compiled"] = TorchBackend(compile=True)
    if cuda:
        out["tensorrt"] = TensorRTBackend()
        out["tensorrt-cudagraph"] = TensorRTBackend(cuda_graphs=True)
    return out


def environment() -> dict[str, Any]:
    """Versions and devices, for the report's header."""
    import torch

    cuda = torch.cuda.is_available()
    env: dict[str, Any] = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "torch": torch.__version__,
        "cuda": cuda,
        "backends": backends_here(),
    }
    if cuda:
        env["gpu"] = torch.cuda.get_device_name()
        env["compute_capability"] = ".".join(map(str, torch.cuda.get_device_capability()))
        env["cuda_version"] = torch.version.cuda
    return env


def load_variants(
    manifest: Manifest, cuda: bool, cache_dir: Path
) -> tuple[dict[str, Backend], dict[str, str], dict[str, Any]]:
    """Every variant that loads and warms, those skipped (why), and what each runs on."""
    loaded: dict[str, Backend] = {}
    report = LoadReport(engine=manifest.name)
    all_variants = variants(cuda)
    if not cuda:
        report.skipped.update(
            {k: "no CUDA" for k in ("onnxruntime-cuda", "torch-compiled", "tensorrt")}
        )
    timings: dict[str, Any] = {}
    for label, backend in all_variants.items():
        print(f"[{manifest.name}] loading {label} ...", flush=True)
        got = try_backend(manifest, label, cache_dir, report, backend)
        if got is None:
            print(f"[{manifest.name}] {label} skipped: {report.skipped[label]}", flush=True)
            continue
        desc = got.describe()
        if label == "onnxruntime-cuda" and desc.get("device") != "cuda":
            report.skipped[label] = f"provider fell back to {desc.get('provider')}"
            got.close()
            continue
        loaded[label] = got
        timings[label] = {"load_s": report.load_s, "warmup_s": report.warmup_s, **desc}
    return loaded, report.skipped, timings


def check_engine(
    manifest: Manifest, args: argparse.Namespace, cuda: bool, deadline: float
) -> dict[str, Any]:
    """Parity and timings of one engine on every variant."""
    loaded, skipped, details = load_variants(manifest, cuda, args.cache_dir)
    cases = [c.as_dict() for c in check_parity(manifest, loaded)]
    for c in cases:
        mark = "ok" if c["ok"] else "FAIL"
        print(f"[{manifest.name}] parity {mark} {c['backend']} {c['inputs']} b{c['batch']}: "
              f"{c['max_abs_diff']:.2e}", flush=True)  # fmt: skip
    sizes = sorted(set(args.batch)) if args.batch else list(manifest.batch_sizes)
    rows: list[dict[str, Any]] = []
    for label, backend in loaded.items():
        engine = Engine(manifest, backend)
        for batch in sizes:
            if time.monotonic() > deadline:
                rows.append({"backend": label, "batch": batch, "skipped": "time budget spent"})
                continue
            result = bench_engine(engine, batch, args.iterations, label=label).as_dict()
            rows.append(result)
            print(f"[{manifest.name}] {label:<17} b{batch:<3} p50 {result['p50_ms']:.3f} ms "
                  f"p99 {result['p99_ms']:.3f} ms {result['windows_per_s']:.1f} windows/s",
                  flush=True)  # fmt: skip
        backend.close()
    _ratios(rows)
    return {
        "engine": manifest.name,
        "tolerance": tolerance_for(manifest),
        "backends": details,
        "skipped": skipped,
        "parity": cases,
        "parity_ok": all(c["ok"] for c in cases),
        "bench": rows,
    }


def _ratios(rows: list[dict[str, Any]]) -> None:
    """windows/s relative to torch eager at the same batch size."""
    eager = {r["batch"]: r["windows_per_s"] for r in rows if r.get("backend") == "torch-eager"}
    for r in rows:
        if "windows_per_s" in r and r["batch"] in eager:
            r["ratio_to_torch_eager"] = round(r["windows_per_s"] / eager[r["batch"]], 2)


def main(argv: list[str] | None = None) -> int:
    """Run every check and write the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("artifacts/gpu-report.json"))
    parser.add_argument("--user-dir", type=Path, help="also check the engines in this directory")
    parser.add_argument("--cache-dir", type=Path, default=Path("artifacts/engine-cache"))
    parser.add_argument("--engine", action="append", help="only these engines")
    parser.add_argument("--batch", type=int, action="append", help="batch sizes to time")
    parser.add_argument("--iterations", type=int, default=50)
    parser.add_argument("--budget-s", type=float, default=240.0, help="stop timing after this")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    import torch

    cuda = torch.cuda.is_available()
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    start = time.monotonic()
    found = discover(args.user_dir)
    names = args.engine or sorted(found.manifests)
    report: dict[str, Any] = {"environment": environment(), "engines": [], "errors": {}}
    report["errors"] = {str(p): e for p, e in found.errors.items()}
    for name in names:
        if name not in found.manifests:
            report["errors"][name] = "engine not found"
            continue
        deadline = start + args.budget_s
        report["engines"].append(check_engine(found.manifests[name], args, cuda, deadline))
    report["seconds"] = round(time.monotonic() - start, 1)
    report["ok"] = all(e["parity_ok"] for e in report["engines"]) and not report["errors"]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"wrote {args.out} in {report['seconds']} s; parity {'ok' if report['ok'] else 'FAILED'}")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
