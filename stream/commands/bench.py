"""`scenestream bench`: the load benchmark (see `stream.benchmark.campaign`)."""

from __future__ import annotations

import argparse

from engines.errors import UserError
from stream.benchmark.campaign import MAX_STREAMS, MAX_WORKERS, run_campaign


def run(args: argparse.Namespace) -> int:
    """Entry point of `scenestream bench`: checks the arguments, then runs the campaign."""
    if args.streams < 1 or args.streams > MAX_STREAMS:
        raise UserError(f"--streams must be within 1..{MAX_STREAMS}")
    if args.seconds <= 0 or args.seconds > 600:
        raise UserError("--seconds must be within (0, 600]")
    if not 1 <= args.workers <= MAX_WORKERS:
        raise UserError(f"--workers must be within 1..{MAX_WORKERS}")
    if args.workers > 1 and args.no_engine:
        raise UserError("--workers applies to the service; --no-engine runs the ingest alone")
    if args.overload and args.no_engine:
        raise UserError("--overload measures the service with its engine; drop --no-engine")
    return run_campaign(args)
