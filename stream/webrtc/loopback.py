"""Loopback ICE candidates.

aioice never offers 127.0.0.1 as a host candidate. On a single host (demo, tests, a machine or
network namespace with only `lo`) peers then cannot connect. This swaps aioice's address lookup
for one that offers loopback (only, or in addition to the real interfaces).
"""

from __future__ import annotations

from collections.abc import Callable

import aioice.ice

_original: Callable[[bool, bool], list[str]] = aioice.ice.get_host_addresses


def use_loopback_candidates(*, only: bool = False) -> None:
    """Offer 127.0.0.1 as an ICE host candidate; with `only`, offer nothing else."""

    def addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        extra = [] if only else [a for a in _original(use_ipv4, use_ipv6) if ":" not in a]
        return ["127.0.0.1", *extra] if use_ipv4 else extra

    aioice.ice.get_host_addresses = addresses


def restore_candidates() -> None:
    """Undo `use_loopback_candidates`."""
    aioice.ice.get_host_addresses = _original  # type: ignore[assignment]
