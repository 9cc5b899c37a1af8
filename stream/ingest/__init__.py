"""Ingest, in data-path order: `session.py` (one RTCPeerConnection per stream, timers, watchdog)
→ `stream_ingest.py` (one always-draining reader per track) with `tracks.py` (per-track capture
times) and `clock.py` (RTP → capture clock) → `audio_batch.py` (audio → engine rate) →
`rings.py` (per-stream media rings) → `cutter.py` (windows every hop) → `window_sink.py`
(where windows go: the scheduler).
"""
