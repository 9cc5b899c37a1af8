"""Service configuration: validated once at start.

Sources, later ones winning: defaults, a TOML file (`--config`), `SCENESTREAM_*` environment
variables (nested with `__`, e.g. `SCENESTREAM_SERVER__PORT=9000`), then command-line flags.
Every section forbids unknown keys so that a typo is an error at start, not a silent default.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from engines.config import EnginesConfig
from engines.detect.tracker import TrackerParams
from engines.rules import RulesConfig

STREAM_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


class ConfigError(Exception):
    """A configuration file or value is invalid; the message names the field."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerConfig(_Section):
    """HTTP/WHIP endpoint."""

    host: str = Field("127.0.0.1", description="address to listen on (0.0.0.0 in containers)")
    port: int = Field(8080, ge=0, le=65535, description="HTTP port (0 picks a free one)")
    tokens: list[SecretStr] = Field(
        default_factory=list, description="bearer tokens accepted; empty means open (warned)"
    )
    cors_origins: list[str] = Field(
        default_factory=list, description="origins allowed to call WHIP from a browser; '*' = any"
    )
    max_body_bytes: int = Field(128_000, gt=0, description="largest accepted SDP offer")
    max_streams: int = Field(16, gt=0, description="live streams before POST answers 503")
    admission: Literal["headroom", "count"] = Field(
        "headroom",
        description="'headroom': also refuse a newcomer (503, or 307 to a peer with room) while"
        " the measured load says it would hurt the streams already carried; 'count': only"
        " max_streams limits admission",
    )
    headroom_loop_busy: float = Field(
        0.85,
        gt=0,
        le=1,
        description="headroom: event-loop busy fraction (CPU/wall of the loop thread, projected to"
        " one more stream) beyond which newcomers are refused",
    )
    headroom_process_cpu: float = Field(
        0.75,
        gt=0,
        description="headroom: cores the whole process uses (CPU/wall over all its threads,"
        " projected to one more stream) beyond which newcomers are refused; a Python worker is"
        " held near one core by the GIL",
    )
    headroom_loop_lag_ms: float = Field(
        100.0, gt=0, description="headroom: p90 event-loop lag beyond which newcomers are refused"
    )
    headroom_window_lateness_ms: float = Field(
        150.0,
        gt=0,
        description="headroom: p90 age of a window when its engine takes it (after its end on the"
        " capture clock) beyond which newcomers are refused",
    )
    post_rate_per_minute: int = Field(
        60, gt=0, description="WHIP POST/PATCH/DELETE per client address per minute"
    )
    auth_failures_per_minute: int = Field(
        5,
        gt=0,
        description="failed bearer-token checks allowed per client address per minute (burst"
        " of as many); further requests from it get 429 + Retry-After until one is earned back",
    )
    public_url: str | None = Field(
        None, description="URL other workers use to redirect here (scale-out); None = host:port"
    )
    advertise_ttl_s: float = Field(
        3.0,
        gt=0,
        description="scale-out: TTL of this worker's advert and stream claims in Redis (refreshed"
        " every ~1 s); a worker killed without notice is declared lost, its streams offline,"
        " after about this long",
    )


class SessionConfig(_Section):
    """WebRTC sessions."""

    ice_servers: list[str] = Field(
        default_factory=list, description="STUN/TURN URLs; none by default (no outside traffic)"
    )
    setup_timeout_s: float = Field(15.0, gt=0, description="offer to ICE connected, else closed")
    media_timeout_s: float = Field(
        10.0, gt=0, description="no media for this long closes the stream (status offline)"
    )
    include_loopback: bool = Field(
        False, description="also offer 127.0.0.1 ICE candidates (single-host demos and tests)"
    )


class IngestConfig(_Section):
    """Rings and window cutting."""

    ring_seconds: float = Field(4.0, gt=0, description="media kept per stream in the rings")
    max_wait_s: float = Field(
        0.1,
        ge=0,
        description="how long a window waits for a late modality before it is cut (what the late "
        "one has is used, the rest is a gap); keep it below the smallest engine budget minus its "
        "batching delay, or a late window is shed as stale instead",
    )
    audio_jitter_frames: int = Field(
        2,
        ge=0,
        le=16,
        description="how far (in 20 ms audio frames) audio may run past a missing packet before "
        "the packet is given up and its 20 ms become a zero-filled gap; in-order audio is never "
        "held (more tolerates deeper reordering, at that much delay after each loss)",
    )
    video_loss_wait_s: float = Field(
        0.1,
        ge=0,
        le=2.0,
        description="how far (RTP media time) video may run past a missing packet, time for a "
        "NACK retransmission, before the frames up to the next keyframe are given up and a "
        "keyframe is requested (PLI)",
    )
    sender_clock_max_offset_s: float = Field(
        0.5,
        gt=0,
        le=60,
        description="a publisher's RTCP Sender Report clock is taken as wall-clock only while its"
        " least delay to our arrival time is within this bound (and it is not ahead of ours);"
        " otherwise it only aligns audio with video, anchored on arrival",
    )


class CameraConfig(_Section):
    """A camera the service pulls from (RTSP, or any live URL PyAV opens), by its stream id."""

    id: str = Field(pattern=STREAM_ID_PATTERN, description="stream id its windows and events carry")
    url: str = Field(
        # What PyAV's FFmpeg opens live; not file:// or other local inputs (SRT is not built in).
        pattern=r"^(rtsps?|rtmps?|https?)://\S+$",
        description="rtsp://, rtsps://, rtmp://, rtmps:// or http(s):// (HLS) URL",
    )
    options: dict[str, str] = Field(
        default_factory=dict,
        description='FFmpeg input options, e.g. {rtsp_transport = "udp"} (default tcp for RTSP)',
    )


class PullConfig(_Section):
    """Pulled cameras: connection and reconnection."""

    open_timeout_s: float = Field(10.0, gt=0, description="to connect and read the stream's header")
    read_timeout_s: float = Field(
        5.0, gt=0, description="no data for this long drops the connection"
    )
    reconnect_initial_s: float = Field(0.5, gt=0, description="first wait before reconnecting")
    reconnect_max_s: float = Field(30.0, gt=0, description="longest wait between reconnects")
    queue_frames: int = Field(
        64, ge=2, description="decoded frames held between a camera's reader thread and ingest"
    )


class RedisConfig(_Section):
    """Publishing to Redis."""

    url: str | None = Field(None, description="redis:// URL; None starts an embedded redis-server")
    prefix: str = Field("scenestream", pattern=r"^[A-Za-z0-9_.-]+$", description="key prefix")
    log_maxlen: int = Field(10_000, gt=0, description="approximate cap of each stream's log")
    outbox_max: int = Field(10_000, gt=0, description="messages buffered while Redis is away")
    publish_scene: bool = Field(True, description="publish a scene message per window")
    cluster: bool | Literal["auto"] = Field(
        "auto",
        description="Redis Cluster (sharded pub/sub: SPUBLISH/SSUBSCRIBE); 'auto' asks the server"
        " (INFO cluster) at start",
    )


class TrackingConfig(_Section):
    """Object tracks of detector engines (one tracker per stream and detector)."""

    high_score: float = Field(0.5, gt=0, le=1, description="detection score that can start a track")
    low_score: float = Field(
        0.1, ge=0, le=1, description="least score that can keep a track alive (occlusion)"
    )
    match_iou: float = Field(0.3, gt=0, le=1, description="least IoU of a detection with a track")
    min_hits: int = Field(2, ge=1, le=100, description="frames seen before a track is announced")
    max_age_s: float = Field(1.0, gt=0, description="a track unseen for longer ends")
    ttc_window_s: float = Field(
        1.0, gt=0, description="box history the time-to-contact estimate fits over"
    )

    @model_validator(mode="after")
    def _ordered(self) -> TrackingConfig:
        if self.low_score > self.high_score:
            raise ValueError("low_score must not exceed high_score")
        return self

    def params(self) -> TrackerParams:
        """The tracker's parameters (this section's fields, under the same names)."""
        return TrackerParams(**self.model_dump())


class Settings(BaseSettings):
    """The whole service configuration."""

    model_config = SettingsConfigDict(
        env_prefix="SCENESTREAM_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    server: ServerConfig = Field(default_factory=ServerConfig)  # type: ignore[arg-type]
    session: SessionConfig = Field(default_factory=SessionConfig)  # type: ignore[arg-type]
    ingest: IngestConfig = Field(default_factory=IngestConfig)  # type: ignore[arg-type]
    redis: RedisConfig = Field(default_factory=RedisConfig)  # type: ignore[arg-type]
    engines: EnginesConfig = Field(default_factory=EnginesConfig)  # type: ignore[arg-type]
    pull: PullConfig = Field(default_factory=PullConfig)  # type: ignore[arg-type]
    cameras: list[CameraConfig] = Field(
        default_factory=list, description="cameras pulled from start ([[cameras]] in TOML)"
    )
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)  # type: ignore[arg-type]
    rules: RulesConfig = Field(default_factory=RulesConfig)
    log_level: str = Field("INFO", pattern=r"^(DEBUG|INFO|WARNING|ERROR)$")

    @field_validator("cameras")
    @classmethod
    def _unique_camera_ids(cls, cameras: list[CameraConfig]) -> list[CameraConfig]:
        ids = [camera.id for camera in cameras]
        twice = sorted({i for i in ids if ids.count(i) > 1})
        if twice:
            raise ValueError(f"camera ids must be unique; repeated: {', '.join(twice)}")
        return cameras

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment beats the file (passed as init kwargs), as a container user expects.
        return (env_settings, init_settings)


def load_settings(path: Path | None = None, **overrides: Any) -> Settings:
    """Load settings from an optional TOML file, the environment and explicit overrides.

    `overrides` are dotted section values from the command line, e.g.
    `{"server": {"port": 9000}}`; they win over everything else.
    """
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(path.read_text())
        except FileNotFoundError as exc:
            raise ConfigError(f"config file not found: {path}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: invalid TOML: {exc}") from exc
    try:
        base = Settings(**data)
        if not overrides:
            return base
        merged = _deep_merge(base.model_dump(), overrides)
        return Settings.model_validate(merged)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        origin = f"{path}: " if path else ""
        raise ConfigError(f"{origin}{where}: {first['msg']}") from exc


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        elif value is not None:
            out[key] = value
    return out
