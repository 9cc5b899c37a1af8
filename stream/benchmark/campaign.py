"""The load benchmark behind `scenestream bench`: N loopback streams against the service.

Each trial starts a server in a process of its own (the service from its composition root, or
the naive per-frame baseline, or with `--no-engine` the ingest alone), then a sender process
relaying a pre-encoded 640x480@30 VP8 + Opus clip as N WHIP streams over loopback, and measures
for `--seconds` after a warm-up: capture-to-publish p50/p95/p99 from the scene messages on
Redis, windows/s, drops by reason from `/metrics`, server CPU per stream and RSS. With
`--find-capacity` it searches the largest N each server holds (p95 within 250 ms, no stale
drops, no RSS/latency/queue growth; admission by count, so that it measures what the machine
holds). With `--overload` it then offers 1.5x that capacity (or 1.5x `--streams` without a
search), once with admission by count (every stream taken: what overload did before admission
by headroom) and once by headroom; the sender counts refused streams and goes on, and the
report gives the admitted streams' p95 and share of windows published, and the refused count.
Writes `OUT/bench.json` and `OUT/bench.md`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

from engines.errors import UserError
from stream.benchmark.report import (
    P95_BUDGET_S,
    CapacitySearch,
    TrialResult,
    markdown_table,
    overload_streams,
    overload_table,
    ratio,
)

ENGINE = "avfusion"  # the engine measured (the service's A/V fusion model)
WARMUP_S = 3.0
BASELINE_FPS = 30.0  # the baseline publishes once per video frame
MAX_STREAMS = 64
MAX_WORKERS = 8
SEARCH_TRIALS = 10  # bound on trials per capacity search


def _print(line: str) -> None:
    print(line, flush=True)


def _engine_setup(cache_dir: Path) -> tuple[Path | None, str, float]:
    """(engines.user_dir, what runs, hop in s): the bundled avfusion if it is built, else an
    untrained stand-in of the same graph exported once into the cache (same compute cost)."""
    from engines.runtime.loader import BUNDLED_DIR, discover

    found = discover(None)
    bundled = found.manifests.get(ENGINE)
    if bundled is not None and (BUNDLED_DIR / ENGINE / "model.onnx").exists():
        return None, "bundled", bundled.window_spec().hop_s
    user_dir = cache_dir / "bench-engines"
    if not (user_dir / ENGINE / "engine.toml").exists():
        _print("avfusion is not built yet: exporting an untrained stand-in (same graph) ...")
        from engines.lab.export import write_engine_dir
        from engines.runtime.nets.avfusion import AVFusion, AVFusionConfig

        write_engine_dir(AVFusion(AVFusionConfig()).eval(), user_dir / ENGINE)
    hop = discover(user_dir).manifests[ENGINE].window_spec().hop_s
    return user_dir, "untrained stand-in (same graph, random weights)", hop


async def _trial(
    server: str, streams: int, ctx: dict[str, Any], *, admission: str = "count",
    overload: bool = False,
) -> TrialResult:  # fmt: skip
    from stream.benchmark.trial import TrialPlan, run_trial

    expected = {"service": 1.0 / ctx["hop"], "naive": BASELINE_FPS, "ingest": 0.0}[server]
    plan = TrialPlan(
        server=server,
        streams=streams,
        seconds=ctx["seconds"],
        warmup=WARMUP_S,
        clip=ctx["clip"],
        engines=() if server == "ingest" else (ENGINE,),
        user_dir=ctx["user_dir"],
        log_dir=ctx["out"] / "logs",
        expected_per_stream=expected,
        workers=_workers(server, ctx),
        admission=admission,
        overload=overload,
    )
    label = _label(server, ctx) + (f", overload, admission {admission}" if overload else "")
    _print(f"[{label}] {streams} stream(s), {ctx['seconds']:.0f} s after {WARMUP_S:.0f} s "
           "warm-up ...")  # fmt: skip
    try:
        result = await run_trial(plan)
    except (RuntimeError, TimeoutError) as exc:
        raise UserError(f"{server} trial failed: {exc} (log: {plan.log_dir})") from exc
    lat = result.latency_ms
    p95 = "–" if lat["p95"] is None else f"{lat['p95']:.0f} ms"
    if overload:
        share = "–" if result.delivery is None else f"{result.delivery:.0%}"
        met = "targets met" if result.held else "targets missed: " + "; ".join(result.why)
        _print(f"[{label}] N={streams}: {result.admitted} admitted, {result.refused_streams}"
               f" refused; admitted p95 {p95}, {share} of their windows published"
               f" -> {met}")  # fmt: skip
        ctx["overload_rows"].append(result)
        return result
    state = "held" if result.held else "not held: " + "; ".join(result.why) if result.why else "-"
    _print(f"[{label}] N={streams}: p95 {p95}, {result.windows_per_s:.1f} windows/s, "
           f"{result.cpu_per_stream:.3f} cores/stream "
           f"(senders {result.sender_cpu_cores:.2f} cores) -> {state}")  # fmt: skip
    ctx["rows"].append(result)
    return result


async def _capacity(server: str, ctx: dict[str, Any], start: int) -> dict[str, Any]:
    search = CapacitySearch(start=start, limit=MAX_STREAMS)
    while (n := search.next()) is not None and len(search.tried) < SEARCH_TRIALS:
        search.record(n, (await _trial(server, n, ctx)).held)
    bounded = search.next() is not None
    _print(f"[{_label(server, ctx)}] capacity: {search.held} stream(s)"
           f"{' (lower bound)' if bounded else ''}")  # fmt: skip
    return {"streams": search.held, "lower_bound_only": bounded, "tried": search.tried,
            "workers": _workers(server, ctx)}  # fmt: skip


def _workers(server: str, ctx: dict[str, Any]) -> int:
    """Processes a server runs as: `--workers` for the service, one for the others."""
    return int(ctx["workers"]) if server == "service" else 1


def _label(server: str, ctx: dict[str, Any]) -> str:
    workers = _workers(server, ctx)
    return server if workers == 1 else f"{server} ×{workers}"


async def _overload(ctx: dict[str, Any], capacity: int) -> dict[str, Any]:
    """The overload trial at 1.5x `capacity`: admission by count (before), then by headroom."""
    streams = overload_streams(capacity)
    results = {mode: await _trial("service", streams, ctx, admission=mode, overload=True)
               for mode in ("count", "headroom")}  # fmt: skip
    return {"capacity": capacity, "streams": streams,
            "targets_met": {mode: r.held for mode, r in results.items()}}  # fmt: skip


async def _main(args: argparse.Namespace, ctx: dict[str, Any]) -> dict[str, Any]:
    servers = ["ingest"] if args.no_engine else ["service"] + (["naive"] if args.baseline else [])
    if args.overload and not args.find_capacity:
        servers = []  # --streams is the capacity, known already
    capacity: dict[str, Any] = {}
    for server in servers:
        if args.find_capacity:
            capacity[server] = await _capacity(server, ctx, start=1)
        else:
            await _trial(server, args.streams, ctx)
    if "service" in capacity and "naive" in capacity:
        capacity["ratio"] = ratio(capacity["service"]["streams"], capacity["naive"]["streams"])
    if args.overload:
        held = capacity["service"]["streams"] if "service" in capacity else args.streams
        if held < 1:
            raise UserError("no capacity found: nothing to overload")
        ctx["overload"] = await _overload(ctx, held)
    return capacity


def run_campaign(args: argparse.Namespace) -> int:
    """Run the trials `scenestream bench` asked for (arguments already checked) and write
    `OUT/bench.json` and `OUT/bench.md`."""
    from stream.benchmark.clip import cached_clip
    from stream.config import load_settings

    cache_dir = load_settings(None).engines.cache_dir
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    _print("preparing the clip (640x480@30 VP8 + Opus, cached) ...")
    clip = cached_clip(cache_dir)
    user_dir, model, hop = (None, "none", 0.5) if args.no_engine else _engine_setup(cache_dir)
    ctx: dict[str, Any] = {"seconds": args.seconds, "clip": clip, "user_dir": user_dir,
                           "out": out, "hop": hop, "rows": [], "workers": args.workers,
                           "overload_rows": []}  # fmt: skip
    capacity = asyncio.run(_main(args, ctx))
    rows: list[TrialResult] = ctx["rows"]
    table = markdown_table(rows)
    doc = {
        "command": "scenestream bench " + " ".join(_argv(args)),
        "engine": None if args.no_engine else ENGINE,
        "model": model,
        "hop_s": hop,
        "p95_budget_ms": P95_BUDGET_S * 1e3,
        "warmup_s": WARMUP_S,
        "cpus": os.cpu_count(),
        "load_avg": os.getloadavg(),
        "python": platform.python_version(),
        "started_at": started,
        "elapsed_s": round(time.time() - started, 1),
        "trials": [r.as_dict() for r in rows],
        "capacity": capacity,
    }
    overload_rows: list[TrialResult] = ctx["overload_rows"]
    if overload_rows:
        doc["overload"] = {**ctx["overload"], "trials": [r.as_dict() for r in overload_rows]}
        doc["overload_table"] = otable = overload_table(overload_rows)
    (out / "bench.json").write_text(json.dumps(doc, indent=2))
    (out / "bench.md").write_text(_markdown(doc, table))
    _print("")
    _print(table)
    if overload_rows:
        _print(f"overload: {ctx['overload']['streams']} streams offered "
               f"({ctx['overload']['capacity']} held)")  # fmt: skip
        _print(otable)
    if capacity.get("ratio") is not None:
        _print(f"streams held at p95 <= {P95_BUDGET_S * 1e3:.0f} ms: service "
               f"{capacity['service']['streams']}, baseline {capacity['naive']['streams']}, "
               f"ratio {capacity['ratio']:.1f}x")  # fmt: skip
    _print(f"wrote {out / 'bench.json'} and {out / 'bench.md'}")
    return 0


def _argv(args: argparse.Namespace) -> list[str]:
    parts = [f"--streams {args.streams}", f"--seconds {args.seconds:g}"]
    parts += ["--find-capacity"] if args.find_capacity else []
    parts += [] if args.baseline else ["--no-baseline"]
    parts += ["--no-engine"] if args.no_engine else []
    parts += [f"--workers {args.workers}"] if args.workers > 1 else []
    parts += ["--overload"] if args.overload else []
    return parts


def _markdown(doc: dict[str, Any], table: str) -> str:
    load = ", ".join(f"{x:.1f}" for x in doc["load_avg"])
    lines = [
        "# scenestream load benchmark",
        "",
        f"`{doc['command']}` — engine {doc['engine']} ({doc['model']}), hop {doc['hop_s']} s, "
        f"{doc['cpus']} CPUs, load average at the end {load}.",
        "",
        table,
    ]
    cap = doc["capacity"]
    for server in ("service", "naive"):
        if server in cap:
            bound = " (lower bound: search stopped)" if cap[server]["lower_bound_only"] else ""
            workers = cap[server].get("workers", 1)
            who = server if workers == 1 else f"{server} ({workers} worker processes)"
            lines.append(f"- {who} holds {cap[server]['streams']} stream(s){bound}")
    if cap.get("ratio") is not None:
        lines.append(f"- ratio service/baseline: {cap['ratio']:.1f}x")
    if "overload" in doc:
        over = doc["overload"]
        lines += [
            "",
            f"## Overload: {over['streams']} streams offered ({over['capacity']} held)",
            "",
            f"Admitted streams' p95 must stay within {doc['p95_budget_ms']:.0f} ms and each keep"
            " 90 % of its windows; the excess must be refused (503).",
            "",
            doc["overload_table"],
        ]
    service = [t for t in doc["trials"] if t["server"] == "service" and t["stages_ms"]]
    if service:
        last = max(service, key=lambda t: t["streams"])
        stages = ", ".join(f"{k} {v:.1f}" for k, v in last["stages_ms"].items())
        outside = last["outside_queue_infer_ms_p50"]
        lines += [
            "",
            f"Service at N={last['streams']}, mean ms per stage: {stages}; capture-to-publish"
            f" outside queue + infer (network, jitter buffer, decode, waiting for the window's"
            f" media, publish), p50: {outside} ms.",
        ]
    return "\n".join(lines) + "\n"
