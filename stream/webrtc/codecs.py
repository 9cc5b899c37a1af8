"""The codecs a session's answer accepts: only what the pipeline decodes.

aiortc answers with every codec it shares with the offer, in the offer's order, so an offer
listing PCMU before Opus would get PCMU. Audio is therefore limited to Opus (what the ingest's
resampling and the engines are built for); every video codec aiortc has (VP8, H.264 baseline and
constrained baseline) is decoded.
"""

from __future__ import annotations

from aiortc import RTCRtpReceiver
from aiortc.rtcrtpparameters import RTCRtpCodecCapability

AUDIO_CODECS = ("opus",)


def receive_preferences(kind: str) -> list[RTCRtpCodecCapability]:
    """Codec preferences for a receiving transceiver of `kind` (empty: aiortc's defaults)."""
    if kind != "audio":
        return []
    capabilities = RTCRtpReceiver.getCapabilities(kind)
    codecs = capabilities.codecs if capabilities is not None else []
    return [c for c in codecs if c.name.lower() in AUDIO_CODECS]
