"""Every Prometheus metric of the service, in one place.

Names, types and labels are a contract (README, dashboards, alert rules). Histograms, not
summaries, so that percentiles aggregate across workers. No per-stream label on histograms:
per-stream figures are served by `/api/streams` instead (cardinality).

A `Metrics` object owns its own `CollectorRegistry`, built by the composition root, so that each
test gets a fresh one.
"""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)

# 1 ms .. 10 s, dense where a real-time budget lives (tens to hundreds of ms).
LATENCY_BUCKETS_S = (
    0.001, 0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25,
    0.3, 0.4, 0.5, 0.75, 1.0, 1.5, 2.5, 5.0, 10.0,
)  # fmt: skip
SKEW_BUCKETS_S = (0.001, 0.005, 0.01, 0.02, 0.033, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)

STAGES = ("ingest", "window", "queue", "infer", "interpret", "track", "rules", "publish")
TRACK_EVENT_KINDS = ("start", "end")
OUTCOMES = ("published", "late", "stale", "superseded", "error")
SHED_REASONS = ("stale", "expired", "evicted", "superseded", "ended")
REFUSAL_REASONS = (
    "capacity",
    "loop_busy",
    "process_cpu",
    "loop_lag",
    "window_lateness",
    "settling",
)


class Metrics:
    """The service's metrics, registered in a registry of their own."""

    def __init__(self, registry: CollectorRegistry | None = None, *, process: bool = True) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        if process:
            ProcessCollector(registry=r)  # process_cpu_seconds_total, process_resident_memory_bytes
        self.stage_seconds = Histogram(
            "scenestream_stage_seconds",
            "Time spent in each stage of the data path",
            ["stage", "engine"],
            buckets=LATENCY_BUCKETS_S,
            registry=r,
        )
        self.capture_to_publish_seconds = Histogram(
            "scenestream_capture_to_publish_seconds",
            "From the end of a window on the capture clock to its scene message being published",
            ["engine"],
            buckets=LATENCY_BUCKETS_S,
            registry=r,
        )
        self.batch_size = Histogram(
            "scenestream_batch_size",
            "Windows per engine call",
            ["engine"],
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.av_skew_seconds = Histogram(
            "scenestream_av_skew_seconds",
            "Absolute difference between the newest audio and video content times (capture"
            " clock) at each window cut of a stream with both",
            buckets=SKEW_BUCKETS_S,
            registry=r,
        )
        self.stream_clocks = Gauge(
            "scenestream_stream_clocks",
            "Live streams by the clock their capture times are on: sender (RTCP Sender Reports"
            " agree with arrival), relative (sender clock anchored on arrival), arrival (no SR)",
            ["clock"],
            registry=r,
        )
        self.frames_received = Counter(
            "scenestream_frames_received_total",
            "Decoded frames received",
            ["kind"],
            registry=r,
        )
        self.frames_dropped = Counter(
            "scenestream_frames_dropped_total",
            "Decoded frames not kept, by reason",
            ["kind", "reason"],
            registry=r,
        )
        self.rtp_packets_lost = Counter(
            "scenestream_rtp_packets_lost_total",
            "RTP packets given up as lost after the bounded wait (audio: a zero-filled gap)",
            ["kind"],
            registry=r,
        )
        self.rtp_packets_late = Counter(
            "scenestream_rtp_packets_late_total",
            "RTP packets discarded for arriving after they were given up as lost",
            ["kind"],
            registry=r,
        )
        self.keyframe_requests = Counter(
            "scenestream_keyframe_requests_total",
            "Keyframe requests (RTCP PLI) sent after a video loss",
            registry=r,
        )
        self.windows = Counter(
            "scenestream_windows_total",
            "Windows by outcome per engine",
            ["engine", "outcome"],
            registry=r,
        )
        self.windows_shed = Counter(
            "scenestream_windows_shed_total",
            "Windows dropped before compute, per engine, by reason",
            ["engine", "reason"],
            registry=r,
        )
        self.streams_refused = Counter(
            "scenestream_streams_refused_total",
            "WHIP offers refused (503, or 307 to a peer) for want of room, by reason",
            ["reason"],
            registry=r,
        )
        self.active_streams = Gauge(
            "scenestream_active_streams", "Live streams on this worker", registry=r
        )
        self.queue_depth = Gauge(
            "scenestream_queue_depth", "Windows waiting for an engine", ["engine"], registry=r
        )
        self.publish_failures = Counter(
            "scenestream_publish_failures_total",
            "Messages that failed to reach Redis (retried from the outbox or dropped)",
            registry=r,
        )
        self.outbox_depth = Gauge(
            "scenestream_outbox_depth", "Messages waiting for Redis", registry=r
        )
        self.outbox_dropped = Counter(
            "scenestream_outbox_dropped_total",
            "Messages dropped because the outbox was full, by message type",
            ["type"],
            registry=r,
        )
        self.camera_connects = Counter(
            "scenestream_camera_connects_total",
            "Pulled cameras' connection attempts, by result (connected, failed, lost)",
            ["result"],
            registry=r,
        )
        self.http_refused = Counter(
            "scenestream_http_refused_total",
            "Requests refused before reaching a stream: malformed_request (by the HTTP parser),"
            " bad_token (failed authentication), auth_locked (too many failed authentications)",
            ["reason"],
            registry=r,
        )
        self.detections = Counter(
            "scenestream_detections_total",
            "Objects detected (after NMS and the label map), per detector engine and class",
            ["engine", "class"],
            registry=r,
        )
        self.tracks_active = Gauge(
            "scenestream_tracks_active",
            "Confirmed tracks on this worker's live streams, per detector engine",
            ["engine"],
            registry=r,
        )
        self.track_events = Counter(
            "scenestream_track_events_total",
            "Tracks started and ended, per detector engine and class",
            ["engine", "class", "kind"],
            registry=r,
        )
        self.gpu_utilization = Gauge(
            "scenestream_gpu_utilization_ratio", "GPU utilisation (0-1) when a GPU is used",
            ["gpu"], registry=r,
        )  # fmt: skip
        self.gpu_memory_bytes = Gauge(
            "scenestream_gpu_memory_used_bytes", "GPU memory in use", ["gpu"], registry=r
        )

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)
