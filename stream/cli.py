"""`scenestream` command line.

Arguments for every command are declared here (so `--help` is fast and complete); each command's
work lives in its own module under `stream/commands/` (named after the command), imported only
when that command runs, exposing `run(args: argparse.Namespace) -> int`. The imports are plain
`from stream.commands import ...` statements in `_command`, so import checks see every edge.
Anything a user can cause ends as one clear line on stderr and a non-zero exit, never a
traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from pathlib import Path

from engines.errors import UserError
from stream import __version__
from stream.logs import configure as configure_logging


def _serve_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, help="TOML configuration file")
    p.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="HTTP port (default 8080)")
    p.add_argument("--redis", help="Redis URL (default: SCENESTREAM_REDIS__URL, else embedded)")


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (no heavy imports)."""
    parser = argparse.ArgumentParser(
        prog="scenestream",
        description="Real-time audio-visual perception: WebRTC (WHIP) in, scene events to Redis.",
    )
    parser.add_argument("--version", action="version", version=f"scenestream {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("demo", help="embedded Redis + service + synthetic camera, prints events")
    _serve_args(p)
    p.add_argument("--seconds", type=float, help="stop by itself after this long, with a summary")
    p.add_argument("--scenario", default="emergency", help="scenario the camera plays")

    p = sub.add_parser("serve", help="run the service")
    _serve_args(p)

    p = sub.add_parser("send", help="WHIP client: publish a scenario, a file or a device")
    p.add_argument("url", help="WHIP endpoint, e.g. http://127.0.0.1:8080/whip/cam1")
    p.add_argument("--token", help="bearer token")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--scenario", help="scenario name or script file")
    src.add_argument("--file", type=Path, help="media file PyAV can open")
    src.add_argument(
        "--device", action="append",
        help="capture device, repeatable (camera + microphone): /dev/videoN (V4L2), an ALSA "
        "input (hw:1, default), or FORMAT:INPUT for any FFmpeg input device (pulse:default, "
        "x11grab::0.0, lavfi:testsrc)",
    )  # fmt: skip
    p.add_argument("--loop", action="store_true", help="loop the file or scenario")
    p.add_argument("--seconds", type=float, help="stop after this long")
    p.add_argument("--codec", choices=["vp8", "h264"], default="vp8", help="video codec")
    p.add_argument("--truth", type=Path, help="write the scenario's ground truth here (JSON)")

    p = sub.add_parser("events", help="subscribe and print scene messages and events")
    p.add_argument("--redis", help="Redis URL (default: SCENESTREAM_REDIS__URL)")
    p.add_argument("--prefix", default="scenestream", help="Redis key prefix")
    p.add_argument("--stream", help="only this stream id (default: all)")
    p.add_argument("--kind", choices=["scene", "events", "status"], action="append",
                   help="message kinds (default: events and status); repeatable")  # fmt: skip
    p.add_argument("--json", action="store_true", help="one JSON object a line")
    p.add_argument("--seconds", type=float, help="stop after this long")

    p = sub.add_parser("engines", help="list, build, verify and benchmark engines")
    esub = p.add_subparsers(dest="engines_command", metavar="ACTION", required=True)
    for name, text in [
        ("list", "engines and backends available here"),
        ("build", "export/compile engines (cached)"),
        ("verify", "check parity across every available backend"),
        ("bench", "latency and throughput per backend per batch size"),
    ]:
        ep = esub.add_parser(name, help=text)
        ep.add_argument("names", nargs="*", help="engine names (default: all)")
        ep.add_argument("--config", type=Path, help="TOML configuration file")
        ep.add_argument("--backend", action="append", help="only these backends; repeatable")
        ep.add_argument("--json", type=Path, help="also write results as JSON here")
        if name == "bench":
            ep.add_argument("--batch", type=int, action="append", help="batch sizes")
            ep.add_argument("--iterations", type=int, default=50, help="timed calls per size")
            ep.add_argument(
                "--threads",
                type=_thread_count,
                action="append",
                help="ONNX Runtime intra-op threads (0 = auto); repeatable, one run each "
                "(default: engines.onnxruntime_threads)",
            )
    ep = esub.add_parser("import", help="turn a pretrained model into an engine directory")
    ep.add_argument(
        "source",
        help="a detector's ONNX file, torchvision:ARCH (a torchvision detection model), or a "
        "transformers audio classifier (a local checkpoint directory, or a hub id when online)",
    )
    ep.add_argument("--out", type=Path, required=True, help="engine directory to write")
    ep.add_argument("--name", help="engine name (default: from the source)")
    ep.add_argument("--names", type=Path, help="detector class names: one a line, or JSON")
    ep.add_argument("--fps", type=float, default=5.0, help="detector: frames per second")
    ep.add_argument("--window-s", type=float, default=1.0, help="audio: window length, s")
    ep.add_argument(
        "--weights",
        default="default",
        help="torchvision: 'default' (torchvision's COCO weights, downloaded), a local state "
        "dict FILE, or 'none' (random)",
    )
    ep.add_argument("--num-classes", type=int, help="torchvision: classes incl. background")
    ep.add_argument(
        "--size", type=_frame_size, help="torchvision: frame size WxH the service delivers"
    )
    ep.add_argument("--json", type=Path, help="also write the import report as JSON here")

    p = sub.add_parser("train", help="train the avfusion reference model on generated scenes")
    p.add_argument("--out", type=Path, default=Path("engines/bundled/avfusion"))
    p.add_argument("--epochs", type=int, help="maximum epochs")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data", type=Path, help="train on your own clips: a directory + labels.csv")
    p.add_argument("--cache", type=Path, help="directory for the generated training set")
    p.add_argument("--minutes", type=float, help="stop training after this wall time")
    p.add_argument(
        "--init",
        type=Path,
        help="fine-tune from this avfusion checkpoint (a model.pt of the same shapes) instead "
        "of starting from scratch; the learning rate peaks at a third",
    )
    p.add_argument(
        "--lr",
        type=float,
        help="peak learning rate (default 0.003 from scratch, a third of it with --init)",
    )
    p.add_argument(
        "--freeze",
        action="append",
        choices=("audio", "video"),
        default=[],
        help="with --init: keep this branch as the checkpoint has it (repeatable); a fine-tune "
        "for the picture labels with --freeze audio cannot drift the sound labels' features",
    )
    p.add_argument(
        "--lost-picture",
        action="store_true",
        help="modality dropout takes the picture away as black, a flat colour or one frame "
        "frozen (a third each) instead of black only",
    )
    p.add_argument(
        "--filter-augment",
        action="store_true",
        help="pass each training window's sound through a random smooth filter (±6 dB across "
        "the mel axis): a label cannot rest on one synthesizer's balance of harmonics",
    )
    p.add_argument(
        "--lens",
        action="store_true",
        help="show 30 %% of the training windows through a random lens (a crop up to 1.3x "
        "smaller resized back up, a Gaussian blur up to 1.2 px; the same for every frame): "
        "lamps and vehicles bigger and softer than the generator draws them",
    )
    p.add_argument(
        "--windows",
        type=int,
        help="generated training windows (val: 1/8 of it, at most 1200; generation of the "
        "training windows stops after 20 min with what it has)",
    )

    p = sub.add_parser(
        "average", help="average the weights of avfusion fine-tunes of one release into one engine"
    )
    p.add_argument("engines", nargs="+", type=Path, help="engine directories (model.pt)")
    p.add_argument("--out", type=Path, required=True, help="engine directory to write")
    p.add_argument("--weights", type=float, nargs="+", help="one per engine (default equal)")
    p.add_argument("--cache", type=Path, help="directory for the generated validation set")
    p.add_argument(
        "--val-windows", type=int, default=1200, help="validation windows to calibrate on"
    )
    p.add_argument("--no-eval", action="store_true", help="skip the held-out evaluation")

    p = sub.add_parser("evaluate", help="evaluate an engine on a labelled set")
    p.add_argument(
        "--engine",
        action="append",
        help="engine to evaluate (default avfusion); with --rules, repeated: the rules' inputs",
    )
    p.add_argument(
        "--rules",
        action="store_true",
        help="evaluate the fusion rules over the --engine outputs (--set in|cross)",
    )
    p.add_argument(
        "--also",
        action="append",
        default=[],
        metavar="A,B",
        help="with --rules: another set of input engines, evaluated on the same windows",
    )
    p.add_argument(
        "--set",
        dest="set_name",
        default="heldout",
        help="heldout|val|train, a directory, or in|cross|all (independent generator)",
    )
    p.add_argument(
        "--scenes", type=int, help="cross-generator scenes (default 440; with --rules 24)"
    )
    p.add_argument(
        "--cross-seed",
        type=int,
        nargs="+",
        help="with --set cross|all: which cross-generator set (default 11, the model card's); "
        "another seed gives scenes no model was ever chosen on; several pool their scenes "
        "(--scenes of each) into one set, for narrower intervals (about 2 GB of memory per seed)",
    )
    p.add_argument(
        "--card", action="store_true", help="with --set in|cross|all: write it into MODEL_CARD.md"
    )
    p.add_argument(
        "--compare",
        metavar="ENGINE",
        help="with --set in|cross|all: also score ENGINE on the same windows and report the "
        "difference per label with a paired bootstrap interval",
    )
    p.add_argument("--backend", help="backend to use")
    p.add_argument("--json", type=Path, help="write metrics as JSON here")
    p.add_argument("--markdown", type=Path, help="write the table as markdown here")
    p.add_argument("--windows", type=int, help="number of windows to evaluate")

    p = sub.add_parser("bench", help="load benchmark: N loopback streams against the service")
    p.add_argument("--streams", type=int, default=4, help="concurrent senders (default 4)")
    p.add_argument("--seconds", type=float, default=20, help="measured seconds per trial")
    p.add_argument("--find-capacity", action="store_true", help="search the largest N in budget")
    p.add_argument("--baseline", action=argparse.BooleanOptionalAction, default=True,
                   help="also run the naive per-frame baseline")  # fmt: skip
    p.add_argument("--no-engine", action="store_true", help="ingest and windows only")
    p.add_argument("--overload", action="store_true",
                   help="then offer 1.5x the capacity (found, or --streams) with admission by"
                        " count and by headroom; refused streams are counted")  # fmt: skip
    p.add_argument("--workers", type=int, default=1,
                   help="run the service as this many worker processes on one Redis")  # fmt: skip
    p.add_argument("--out", type=Path, default=Path("artifacts/bench"), help="output directory")
    return parser


def _frame_size(text: str) -> tuple[int, int]:
    """`WxH` → (width, height)."""
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected WxH, e.g. 640x480") from None
    if not (16 <= width <= 4096 and 16 <= height <= 4096):
        raise argparse.ArgumentTypeError(f"{text!r}: width and height must be 16..4096")
    return width, height


def _thread_count(text: str) -> int:
    """An ONNX Runtime intra-op thread count: 0 (auto) or 1..MAX_ONNXRUNTIME_THREADS."""
    from engines.config import MAX_ONNXRUNTIME_THREADS  # pydantic only when the flag is used

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a thread count, e.g. 2") from None
    if not 0 <= value <= MAX_ONNXRUNTIME_THREADS:
        raise argparse.ArgumentTypeError(
            f"{text!r}: 0 (auto) or a thread count from 1 to {MAX_ONNXRUNTIME_THREADS}"
        )
    return value


def _command(name: str) -> Callable[[argparse.Namespace], int]:
    """The `run` function of command `name` (its module is imported only now)."""
    if name == "demo":
        from stream.commands.demo import run as run_demo

        return run_demo
    elif name == "serve":
        from stream.commands.serve import run as run_serve

        return run_serve
    elif name == "send":
        from stream.commands.send import run as run_send

        return run_send
    elif name == "events":
        from stream.commands.events import run as run_events

        return run_events
    elif name == "engines":
        from stream.commands.engines import run as run_engines

        return run_engines
    elif name == "train":
        from stream.commands.train import run as run_train

        return run_train
    elif name == "average":
        from stream.commands.average import run as run_average

        return run_average
    elif name == "evaluate":
        from stream.commands.evaluate import run as run_evaluate

        return run_evaluate
    elif name == "bench":
        from stream.commands.bench import run as run_bench

        return run_bench
    raise UserError(f"unknown command {name!r}")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `scenestream` console script."""
    args = build_parser().parse_args(argv)
    configure_logging(logging.DEBUG if args.verbose else logging.INFO)
    run = _command(args.command)
    try:
        return int(run(args))
    except KeyboardInterrupt:
        return 130
    except UserError as exc:
        print(f"scenestream {args.command}: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # a user-caused error from a library still ends as one line
        from stream.config import ConfigError

        if isinstance(exc, ConfigError | FileNotFoundError | ConnectionError | PermissionError):
            print(f"scenestream {args.command}: {exc}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    raise SystemExit(main())
