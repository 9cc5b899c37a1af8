"""A userspace Ethernet bridge that delays UDP in one direction by a random amount (jitter,
and with it reordering), for kernels without `sch_netem` (`tc qdisc ... netem` unavailable).

Runs inside a middle network namespace between two veth ends: every frame read on one side is
written to the other; IPv4 UDP frames from `--from-side a` are held `delay + U(0, jitter)` ms
first, so packets overtake each other as they would on a path with that delay variation.
Everything else (ARP, the other direction) passes at once. It starts with no delay; on SIGUSR1
it reads "DELAY_MS JITTER_MS" from the `--control` file. Linux only (AF_PACKET); needs root.

    python -m tests.support.jitter_bridge IFACE_A IFACE_B --control FILE
"""

from __future__ import annotations

import argparse
import heapq
import random
import select
import signal
import socket
import time
from pathlib import Path

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
_IPV4, _UDP = b"\x08\x00", 17


def _open(iface: str) -> socket.socket:
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    sock.bind((iface, 0))
    sock.setblocking(False)
    return sock


def _is_udp(frame: bytes) -> bool:
    return len(frame) > 23 and frame[12:14] == _IPV4 and frame[23] == _UDP


def bridge(a: str, b: str, control: Path, seed: int | None = None) -> None:
    """Forward frames between `a` and `b` for ever, delaying UDP from `a` (see module doc)."""
    rng = random.Random(seed)
    setting = [0.0, 0.0]  # delay, jitter (seconds)

    def reload(*_: object) -> None:
        delay_ms, jitter_ms = (float(v) for v in control.read_text().split())
        setting[:] = [delay_ms / 1000, jitter_ms / 1000]

    signal.signal(signal.SIGUSR1, reload)
    side_a, side_b = _open(a), _open(b)
    other = {side_a: side_b, side_b: side_a}
    held: list[tuple[float, int, bytes]] = []  # (due, tiebreak, frame) for side b
    count = 0
    while True:
        timeout = max(0.0, held[0][0] - time.monotonic()) if held else 1.0
        try:
            ready, _, _ = select.select([side_a, side_b], [], [], timeout)
        except InterruptedError:
            continue
        for sock in ready:
            while True:
                try:
                    frame, addr = sock.recvfrom(65535)
                except BlockingIOError:
                    break
                if addr[2] == PACKET_OUTGOING:
                    continue  # our own writes, seen again on the way out
                delay_s, jitter_s = setting
                if sock is side_a and (delay_s or jitter_s) and _is_udp(frame):
                    count += 1
                    due = time.monotonic() + delay_s + rng.uniform(0.0, jitter_s)
                    heapq.heappush(held, (due, count, frame))
                else:
                    other[sock].send(frame)
        now = time.monotonic()
        while held and held[0][0] <= now:
            side_b.send(heapq.heappop(held)[2])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("a")
    parser.add_argument("b")
    parser.add_argument("--control", type=Path, required=True, help='"DELAY_MS JITTER_MS"')
    parser.add_argument("--seed", type=int)
    args = parser.parse_args()
    bridge(args.a, args.b, args.control, args.seed)


if __name__ == "__main__":
    main()
