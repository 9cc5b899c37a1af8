"""Configuration: file, environment and overrides; clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from stream.config import ConfigError, load_settings

pytestmark = pytest.mark.unit


def test_defaults_are_valid() -> None:
    s = load_settings()
    assert s.server.port == 8080
    assert s.redis.prefix == "scenestream"
    assert s.engines.enabled == ["avfusion", "silero-vad"]


def test_file_env_and_overrides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[server]\nport = 9000\nmax_streams = 3\n[redis]\nprefix = "x"\n')
    monkeypatch.setenv("SCENESTREAM_SERVER__MAX_STREAMS", "5")
    s = load_settings(cfg, redis={"prefix": "y"})
    assert s.server.port == 9000
    assert s.server.max_streams == 5  # environment beats the file
    assert s.redis.prefix == "y"  # command line beats both


def test_unknown_key_names_the_field(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("[server]\nprot = 9000\n")
    with pytest.raises(ConfigError, match=r"server\.prot"):
        load_settings(cfg)


def test_missing_file_and_bad_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[server\n")
    with pytest.raises(ConfigError, match="invalid TOML"):
        load_settings(bad)
