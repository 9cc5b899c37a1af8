"""`EngineRuntime` implementation: windows of many streams → one backend call → scores.

Per call, the windows' media are stacked into the graph's inputs by role (video, audio), the
stream's carried state is gathered for stateful engines, constants are added, and the batch is
padded up to the nearest batch size the engine was built and warmed for (so that TensorRT
profiles and ONNX Runtime's kernel caches only ever see known shapes). Raw outputs are turned
into scores per label (the manifest's activation); state outputs are stored back per stream.

Streaming engines (`[streaming]`, e.g. Silero VAD) run the window's audio as consecutive chunks,
each with the stream's previous `context` samples prepended, one backend call per chunk for all
streams in the batch, state carried from chunk to chunk and from window to window; the window's
score aggregates its chunks' (max or mean).

Thread model: `infer` runs on the engine's executor thread; `release` may come from the event
loop thread, so the state store is guarded by a lock (held only for dictionary operations).
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from engines.detect.decode import Detection, decode_frame, label_scores
from engines.runtime.backends.base import (
    NUMPY_DTYPES,
    Arrays,
    Backend,
    constant_array,
)
from engines.runtime.batching import (
    activate,
    expect,
    initial,
    map_labels,
    pad_rows,
    reorder,
    rounds,
    stack,
)
from engines.runtime.interface import EngineError, EngineRuntime, Scores
from engines.runtime.manifest import Manifest
from engines.window import Window, WindowSpec

logger = logging.getLogger(__name__)

MAX_STREAM_STATES = 4096  # bound on carried per-stream state; least recently used goes first

F32 = npt.NDArray[np.float32]


class Engine:
    """A loaded, warmed engine: a manifest, a backend, and per-stream state."""

    def __init__(
        self,
        manifest: Manifest,
        backend: Backend,
        *,
        budget_ms: float | None = None,
        max_queue_delay_ms: float | None = None,
        hop_s: float | None = None,
        max_stream_states: int = MAX_STREAM_STATES,
    ) -> None:
        self.manifest = manifest
        self.backend = backend
        eng = manifest.doc.engine
        self._budget_s = (budget_ms or eng.budget_ms) / 1000.0
        self._delay_s = (
            eng.max_queue_delay_ms if max_queue_delay_ms is None else max_queue_delay_ms
        ) / 1000.0
        spec = manifest.window_spec()
        if hop_s is not None and hop_s != spec.hop_s:
            if manifest.doc.streaming is not None:
                raise EngineError(
                    f"{manifest.name}: a streaming engine's hop must equal its length"
                )
            spec = WindowSpec(spec.length_s, hop_s, spec.video, spec.audio)
        self._spec = spec
        self._states: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._max_states = max_stream_states
        self._lock = threading.Lock()
        self._state_inputs = manifest.inputs_with_role("state")
        self._decode = manifest.decode_spec()
        self._detections: dict[int, list[Detection]] = {}  # id(window) -> boxes, per call
        self._state_outputs = {
            out.state_for: name
            for name, out in manifest.doc.outputs.items()
            if out.state_for is not None
        }

    # -- EngineRuntime properties -------------------------------------------------------------
    @property
    def name(self) -> str:
        """Engine name."""
        return self.manifest.name

    @property
    def labels(self) -> tuple[str, ...]:
        """Score labels, in order."""
        return self.manifest.labels

    @property
    def spec(self) -> WindowSpec:
        """The windows this engine consumes."""
        return self._spec

    @property
    def batch_sizes(self) -> tuple[int, ...]:
        """Built and warmed batch sizes, ascending."""
        return self.manifest.batch_sizes

    @property
    def budget_s(self) -> float:
        """Latency budget after the window's end."""
        return self._budget_s

    @property
    def max_queue_delay_s(self) -> float:
        """Longest time the scheduler may hold a window to fill a batch."""
        return self._delay_s

    @property
    def backend_name(self) -> str:
        """The backend that runs this engine."""
        return self.backend.name

    # -- inference ----------------------------------------------------------------------------
    def infer(self, windows: Sequence[Window]) -> list[dict[str, float]]:
        """Scores per label for each window, in order (a detector's as `Scores` carrying the
        detections of the window's last frame). Blocking: call from an executor."""
        labels = self.labels
        rows = self.window_scores(windows)
        if self._decode is None:
            return [dict(zip(labels, map(float, s), strict=True)) for s in rows]
        try:
            return [
                Scores(
                    dict(zip(labels, map(float, s), strict=True)), self._detections.pop(id(w), [])
                )
                for w, s in zip(windows, rows, strict=True)
            ]
        finally:
            self._detections.clear()

    def window_scores(self, windows: Sequence[Window]) -> list[F32]:
        """Scores `[labels]` per window (chunks aggregated for streaming engines)."""
        chunks = self.chunk_scores(windows)
        if self.manifest.doc.streaming is None:
            return [c[0] for c in chunks]
        agg = np.max if self.manifest.doc.streaming.aggregate == "max" else np.mean
        return [agg(c, axis=0).astype(np.float32) for c in chunks]

    def chunk_scores(self, windows: Sequence[Window]) -> list[F32]:
        """Scores `[chunks, labels]` per window (one chunk for non-streaming engines)."""
        for window in windows:
            self._check(window)
        self._detections.clear()  # only the last call's are kept (infer takes them)
        out: list[F32] = []
        largest = self.batch_sizes[-1]
        for round_ in rounds(windows) if self.manifest.stateful else [list(windows)]:
            for i in range(0, len(round_), largest):
                group = round_[i : i + largest]
                try:
                    if self.manifest.doc.streaming is None:
                        scores = self._run_windows(group)
                    else:
                        scores = self._run_streaming(group)
                except EngineError:
                    raise
                except Exception as exc:  # numpy/backends: one typed error for the scheduler
                    raise EngineError(f"{self.name}: inference failed: {exc}") from exc
                out.extend(scores)
        return reorder(windows, out) if self.manifest.stateful else out

    def release(self, stream: str) -> None:
        """Forget a stream's carried state."""
        with self._lock:
            self._states.pop(stream, None)

    def close(self) -> None:
        """Free the backend and every stream's state (service shutdown)."""
        with self._lock:
            self._states.clear()
        self.backend.close()

    def stream_count(self) -> int:
        """Streams with carried state."""
        with self._lock:
            return len(self._states)

    # -- one backend call per batch ----------------------------------------------------------
    def _run_windows(self, group: list[Window]) -> list[F32]:
        n, b = len(group), self._padded(len(group))
        inputs: Arrays = {}
        for name, spec in self.manifest.doc.inputs.items():
            if spec.role == "video":
                inputs[name] = stack(spec, b, [w.video for w in group])
            elif spec.role == "audio":
                inputs[name] = stack(spec, b, [w.audio for w in group])
            elif spec.role == "constant":
                inputs[name] = constant_array(spec)
        states = self._gather(group)
        inputs.update(self._state_arrays(states, b))
        raw = self.backend.infer(inputs)
        if self._state_inputs:
            self._store(group, self._next_states(raw, n), None)
        scores = self._scores(raw, n)
        if self._decode is not None:
            scores = np.concatenate([scores, self._detect(group, raw)], axis=1)
        return [scores[i][None, :] for i in range(n)]

    def _detect(self, group: list[Window], raw: Arrays) -> F32:
        """Decode each window's detections (kept for `infer`); per detection label, the best
        detection score of the window as a score row."""
        assert self._decode is not None
        assert self.manifest.doc.detections is not None
        names = self.manifest.doc.detections.graph_outputs()
        for name in names:
            if name not in raw:
                raise EngineError(f"{self.name}: backend returned no output {name!r}")
        labels = self.manifest.detection_labels
        rows = np.zeros((len(group), len(labels)), dtype=np.float32)
        for i, w in enumerate(group):
            try:
                dets = decode_frame(self._decode, [np.asarray(raw[k])[i] for k in names])
            except ValueError as exc:
                raise EngineError(f"{self.name}: cannot decode detections: {exc}") from exc
            self._detections[id(w)] = dets
            best = label_scores(dets, labels)
            rows[i] = [best[label] for label in labels]
        return rows

    def _run_streaming(self, group: list[Window]) -> list[F32]:
        st = self.manifest.doc.streaming
        assert st is not None
        name = next(iter(self.manifest.inputs_with_role("audio")))
        n, b = len(group), self._padded(len(group))
        audio = np.stack([np.asarray(w.audio) for w in group])
        count = audio.shape[1] // st.chunk
        states = self._gather(group)
        context = np.stack([self._context(w.stream, st.context) for w in group])
        constants = {
            k: constant_array(s) for k, s in self.manifest.inputs_with_role("constant").items()
        }
        per_chunk = np.empty((n, count, len(self.labels)), dtype=np.float32)
        for j in range(count):
            x = np.concatenate([context, audio[:, j * st.chunk : (j + 1) * st.chunk]], axis=1)
            inputs: Arrays = {name: pad_rows(x.astype(np.float32, copy=False), b), **constants}
            inputs.update(self._state_arrays(states, b))
            raw = self.backend.infer(inputs)
            states = self._next_states(raw, n)
            per_chunk[:, j] = self._scores(raw, n)
            context = x[:, x.shape[1] - st.context :]
        self._store(group, states, context)
        return [per_chunk[i] for i in range(n)]

    def _padded(self, n: int) -> int:
        return next(b for b in self.batch_sizes if b >= n)

    def _scores(self, raw: Arrays, n: int) -> F32:
        parts: list[F32] = [np.zeros((n, 0), dtype=np.float32)]
        for name, out in self.manifest.doc.outputs.items():
            if not out.labels:
                continue
            if name not in raw:
                raise EngineError(f"{self.name}: backend returned no output {name!r}")
            x = np.asarray(raw[name], dtype=np.float32)
            x = x.reshape(x.shape[0], -1)[:n]
            if x.shape[1] != len(out.labels):
                raise EngineError(f"{self.name}: output {name} has {x.shape[1]} values per row")
            x = activate(x, out.activation)
            mapping = self.manifest.label_maps.get(name)
            parts.append(x if mapping is None else map_labels(x, out.labels, mapping))
        return np.concatenate(parts, axis=1)

    # -- per-stream state ---------------------------------------------------------------------
    def _gather(self, group: list[Window]) -> dict[str, npt.NDArray[Any]]:
        """State per input, stream-major `[n, ...]`, zeros for new streams."""
        out: dict[str, npt.NDArray[Any]] = {}
        with self._lock:
            held = [self._states.get(w.stream, {}) for w in group]
        for name, spec in self._state_inputs.items():
            rows = [h.get(name) for h in held]
            out[name] = np.stack([r if r is not None else initial(spec) for r in rows])
        return out

    def _context(self, stream: str, size: int) -> F32:
        with self._lock:
            ctx = self._states.get(stream, {}).get("__context__")
        return ctx if ctx is not None else np.zeros(size, dtype=np.float32)

    def _state_arrays(self, states: dict[str, npt.NDArray[Any]], b: int) -> Arrays:
        """Stream-major states padded to `b` and moved to the graph's batch axis."""
        out: Arrays = {}
        for name, rows in states.items():
            axis = self._state_inputs[name].batch_axis or 0
            out[name] = np.ascontiguousarray(np.moveaxis(pad_rows(rows, b), 0, axis))
        return out

    def _next_states(self, raw: Arrays, n: int) -> dict[str, npt.NDArray[Any]]:
        out: dict[str, npt.NDArray[Any]] = {}
        for name, spec in self._state_inputs.items():
            axis = spec.batch_axis or 0
            value = np.moveaxis(raw[self._state_outputs[name]], axis, 0)[:n]
            out[name] = value.astype(NUMPY_DTYPES[spec.dtype], copy=True)
        return out

    def _store(
        self, group: list[Window], states: dict[str, npt.NDArray[Any]], context: F32 | None
    ) -> None:
        with self._lock:
            for i, w in enumerate(group):
                entry = {name: rows[i] for name, rows in states.items()}
                if context is not None:
                    entry["__context__"] = context[i].copy()
                self._states[w.stream] = entry
                self._states.move_to_end(w.stream)
            while len(self._states) > self._max_states:
                evicted, _ = self._states.popitem(last=False)
                logger.warning("%s: state store full; forgot stream %s", self.name, evicted)

    # -- input checks -------------------------------------------------------------------------
    def _check(self, w: Window) -> None:
        spec = self._spec
        if spec.video is not None:
            v = spec.video
            expect(self.name, w, "video", w.video, (v.frames, v.height, v.width, 3), np.uint8)
        if spec.audio is not None:
            expect(self.name, w, "audio", w.audio, (spec.audio.samples,), np.float32)


if TYPE_CHECKING:  # the scheduler's protocol, checked by mypy against this implementation

    def _conforms(engine: Engine) -> EngineRuntime:
        return engine
