"""NTP timestamps, as RTCP Sender Reports carry the sender's wall clock (pure)."""

from __future__ import annotations

NTP_UNIX_OFFSET = 2_208_988_800  # seconds from 1900-01-01 (NTP era 0) to 1970-01-01


def ntp_to_unix(ntp64: int) -> float:
    """NTP 64-bit fixed point (32.32 seconds since 1900) to Unix seconds.

    Seconds with the top bit clear are read as NTP era 1 (after 2036-02-07), per RFC 4330 §3.
    """
    seconds = ntp64 >> 32
    if not seconds & 0x8000_0000:
        seconds += 1 << 32
    return seconds - NTP_UNIX_OFFSET + (ntp64 & 0xFFFF_FFFF) / (1 << 32)


def unix_to_ntp(unix: float) -> int:
    """Unix seconds to NTP 64-bit fixed point (the inverse of `ntp_to_unix`)."""
    seconds = int(unix // 1) + NTP_UNIX_OFFSET
    fraction = round((unix - unix // 1) * (1 << 32))
    return ((seconds % (1 << 32)) << 32) + min(fraction, 0xFFFF_FFFF)
