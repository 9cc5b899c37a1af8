"""Every aiortc internal the adapters in `stream/webrtc/` reach, named once, with the pin.

aiortc (pinned 1.16.* in pyproject) exposes neither Sender Reports, nor its jitter buffers, nor
its DTLS suites. The adapters (`rtcp.py`, `jitter.py`, `dtls.py`) use the private names below and
call `require_pinned` first, so a new aiortc turns them off with a logged reason instead of
misbehaving; `tests/unit/test_rtcp_hook.py`, `test_jitter_hook.py` and `test_dtls_adapter.py` fail
loudly on an upgrade that moves any of them.
"""

from __future__ import annotations

import aiortc

SUPPORTED_AIORTC = "1.16."

# RTCRtpReceiver's name-mangled attributes and the methods the hooks wrap.
RECEIVER_MAPPER = "_RTCRtpReceiver__timestamp_mapper"
RECEIVER_CODECS = "_RTCRtpReceiver__codecs"
RECEIVER_JITTER_BUFFER = "_RTCRtpReceiver__jitter_buffer"
RECEIVER_ESTIMATOR = "_RTCRtpReceiver__remote_bitrate_estimator"
RECEIVER_DECODER_QUEUE = "_RTCRtpReceiver__decoder_queue"
RECEIVER_DECODER_THREAD = "_RTCRtpReceiver__decoder_thread"
RECEIVER_RTCP_HANDLER = "_handle_rtcp_packet"
RECEIVER_RTP_HANDLER = "_handle_rtp_packet"


def require_pinned(error: type[Exception]) -> None:
    """Raise `error` unless the installed aiortc is the pinned series."""
    if not aiortc.__version__.startswith(SUPPORTED_AIORTC):
        raise error(f"aiortc {aiortc.__version__} is not the pinned {SUPPORTED_AIORTC}*")
