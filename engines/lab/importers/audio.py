"""Import an audio classifier from a `transformers` checkpoint (`AutoModelForAudioClassification`).

SOURCE is a local checkpoint directory (`config.json`, weights, `preprocessor_config.json`) or,
on a machine with internet access, a hub id (e.g. `MIT/ast-finetuned-audioset-10-10-0.4593`).
Supported: the Audio Spectrogram Transformer and the waveform models listed in
`engines/runtime/nets/hf_audio.py`, whose feature extraction runs inside the exported graph.

The engine directory gets the ONNX export (`model.onnx`), the checkpoint (`checkpoint/`, for
the torch backend and `engines verify`), the class list (`labels.txt`) and a manifest. Class
names from AudioSet are mapped to scene labels with the shipped `audioset` map (multi-label:
sigmoid); other checkpoints keep their class names (single-label: softmax, unless the config
says multi-label).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from engines.errors import UserError
from engines.lab.importers import ImportReport
from engines.labelmaps import load_label_map
from engines.runtime.manifest import MANIFEST_FILE, load_manifest


def import_audio_classifier(
    source: str, out: Path, *, name: str | None = None, window_s: float = 1.0
) -> ImportReport:
    """Write an engine directory for the classifier at `source` (see the module docstring)."""
    try:
        import torch
        from transformers import AutoConfig, AutoFeatureExtractor, AutoModelForAudioClassification
    except ImportError as exc:
        raise UserError(
            "importing audio classifiers needs transformers: pip install 'scenestream[importers]'"
        ) from exc

    from engines.runtime.nets.hf_audio import CHECKPOINT, SUPPORTED, AudioClassifier

    local = Path(source)
    if local.exists() and not (local / "config.json").is_file():
        raise UserError(f"{source}: not a transformers checkpoint (no config.json)")
    try:
        config = AutoConfig.from_pretrained(source)
    except OSError as exc:
        where = "" if local.exists() else " (a hub id needs network access)"
        raise UserError(f"cannot load {source}{where}: {str(exc).splitlines()[0]}") from exc
    kind = config.model_type
    if kind not in SUPPORTED:
        raise UserError(
            f"{source}: unsupported architecture {kind!r} (supported: {', '.join(SUPPORTED)})"
        )
    try:
        model = AutoModelForAudioClassification.from_pretrained(source).eval()
        extractor = AutoFeatureExtractor.from_pretrained(source)
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot load {source}: {str(exc).splitlines()[0]}") from exc
    rate = int(extractor.sampling_rate)
    samples = round(window_s * rate)
    classes = [str(config.id2label[i]) for i in range(len(config.id2label))]
    if len(set(classes)) != len(classes):
        raise UserError(f"{source}: the checkpoint's class names are not unique")
    wrapper = AudioClassifier(model, extractor, samples).eval()
    out.mkdir(parents=True, exist_ok=True)
    _export(torch, wrapper, samples, out / "model.onnx")
    model.save_pretrained(out / CHECKPOINT)
    extractor.save_pretrained(out / CHECKPOINT)
    (out / "labels.txt").write_text("".join(f"{c}\n" for c in classes))
    audioset = load_label_map("audioset")
    mapped = sum(c in audioset for c in classes) >= min(len(classes), 5)
    multi = mapped or config.problem_type == "multi_label_classification"
    engine = name or _slug(local.name if local.exists() else source.split("/")[-1])
    (out / MANIFEST_FILE).write_text(
        _manifest(engine, source, kind, classes, rate, samples, window_s, mapped, multi)
    )
    manifest = load_manifest(out)
    diff = _parity(model, extractor, out / "model.onnx", samples, rate, multi)
    return ImportReport(
        engine_dir=out,
        kind="audio",
        labels=manifest.labels,
        classes=len(classes),
        parity_max_abs_diff=diff,
        details={
            "architecture": kind,
            "sample_rate": rate,
            "label_map": "audioset" if mapped else None,
        },
    )


def _export(torch: Any, wrapper: Any, samples: int, path: Path) -> None:
    import onnx

    example = (torch.zeros(2, samples),)
    batch = torch.export.Dim("batch", min=1, max=64)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(
                wrapper, example, str(path), input_names=["audio"], output_names=["logits"],
                dynamic_shapes={"audio": {0: batch}}, opset_version=18, verbose=False,
            )  # fmt: skip
        except Exception as exc:  # the exporter's own error types vary by version
            raise UserError(f"ONNX export failed: {str(exc).splitlines()[0]}") from exc
    data = path.with_name(path.name + ".data")
    if data.exists() and data.stat().st_size < 1_500_000_000:  # fold weights into one file
        onnx.save(onnx.load(str(path)), str(path))
        data.unlink()


def _manifest(
    engine: str, source: str, kind: str, classes: list[str], rate: int, samples: int,
    window_s: float, mapped: bool, multi: bool,
) -> str:  # fmt: skip
    labels = ", ".join(json.dumps(c) for c in classes)
    label_map = 'label_map = "audioset"\n' if mapped else ""
    return f"""# Imported by `scenestream engines import` from {source} ({kind}).
# Feature extraction runs inside model.onnx; checkpoint/ holds the source for the torch backend.
[engine]
name = "{engine}"
version = "1.0.0"
description = "audio classifier imported from {source}"
model = "model.onnx"
torch_factory = "engines.runtime.nets.hf_audio:load_for_engine"
batch_sizes = [1, 2, 4, 8]
budget_ms = 500
max_queue_delay_ms = 25

[window]
length_s = {window_s!r}
hop_s = {window_s / 2!r}

[inputs.audio]
role = "audio"
dtype = "float32"
shape = ["B", {samples}]
sample_rate = {rate}

[outputs.logits]
activation = "{"sigmoid" if multi else "softmax"}"
{label_map}labels = [{labels}]
"""


def _parity(
    model: Any, extractor: Any, onnx_path: Path, samples: int, rate: int, multi: bool
) -> float:
    """Largest score difference between the source (its feature extractor in numpy, the model
    in torch) and the imported graph in ONNX Runtime, on a tone and on noise."""
    import onnxruntime as ort
    import torch

    t = np.arange(samples) / rate
    rng = np.random.default_rng(0)
    audio = np.stack(
        [0.3 * np.sin(2 * np.pi * 440 * t), 0.1 * rng.standard_normal(samples)]
    ).astype(np.float32)
    feats = extractor(list(audio), sampling_rate=rate, return_tensors="pt")
    with torch.no_grad():
        ref = model(input_values=feats["input_values"]).logits.double()
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    session = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
    got = torch.from_numpy(session.run(None, {"audio": audio})[0]).double()
    act = torch.sigmoid if multi else (lambda x: torch.softmax(x, dim=1))
    return float((act(ref) - act(got)).abs().max())


def _slug(text: str) -> str:
    slug = "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")
    return slug[:64] or "audio-classifier"
