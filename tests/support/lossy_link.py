"""A real lossy network path for tests and benchmarks: two network namespaces joined by a veth
pair, with nftables rules that drop a share of the sender's RTP on the server side.

The rules match on the clear RTP header of the SRTP packets (UDP payload byte 0: version 2; byte
1: payload type), so audio and video can be hit separately: aiortc offers Opus as payload type
96 and its video codecs (and their RTX) from 97 up; RTCP (types 200-206) and STUN/DTLS never
match. Only the sender-to-server direction is impaired (the media uplink); feedback (NACK, PLI,
receiver reports) flows back untouched. Needs root, `ip` (iproute2) and `nft` (nftables).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

Media = Literal["audio", "video", "both"]
OPUS_PT = 96  # aiortc's Opus payload type
VIDEO_PTS = "97-127"  # aiortc's dynamic video payload types (VP8, H.264, RTX)
TABLE = "inet scenestream_loss"
ROOT = Path(__file__).resolve().parents[2]


def unavailable() -> str | None:
    """Why a lossy link cannot be built here, or None when it can."""
    if os.geteuid() != 0:
        return "network namespaces and nftables need root (CI runs as root)"
    missing = [tool for tool in ("ip", "nft") if shutil.which(tool) is None]
    if missing:
        return f"missing {', '.join(missing)} (make system installs iproute2 and nftables)"
    probe = f"ss-loss-probe-{os.getpid()}"
    try:  # a container without CAP_NET_ADMIN or a kernel without nf_tables fails here
        _run(["ip", "netns", "add", probe])
        _run(["ip", "netns", "exec", probe, "nft", "add", "table", "inet", "probe"])
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
        return f"network namespaces with nftables unavailable here: {exc}"
    finally:
        _run(["ip", "netns", "del", probe], check=False)
    return None


def _run(cmd: Sequence[str], *, stdin: str | None = None, check: bool = True) -> str:
    done = subprocess.run(
        list(cmd), input=stdin, capture_output=True, text=True, timeout=20, check=False
    )
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {done.stderr.strip()}")
    return done.stdout


@dataclass
class LossyLink:
    """`server` and `sender` namespaces on one /30; see the module docstring."""

    tag: str = field(default_factory=lambda: str(os.getpid() % 100_000))
    server_ip: str = "10.231.7.1"
    sender_ip: str = "10.231.7.2"
    _bridged: bool = field(default=False, init=False, repr=False)
    _bridge: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)
    _control: Path | None = field(default=None, init=False, repr=False)

    @property
    def server(self) -> str:
        return f"ss-loss-srv-{self.tag}"

    @property
    def sender(self) -> str:
        return f"ss-loss-snd-{self.tag}"

    def netns(self, ns: str) -> list[str]:
        """Command prefix that runs a program inside namespace `ns`."""
        return ["ip", "netns", "exec", ns]

    @property
    def middle(self) -> str:
        return f"ss-loss-mid-{self.tag}"

    def create(self, *, bridged: bool = False) -> LossyLink:
        """Make the namespaces, the veth pair(s), addresses and the (empty) rule table.

        `bridged` puts a third namespace between the two, joined by two veth pairs, where
        `start_jitter` runs the userspace delay bridge (`tests.support.jitter_bridge`).
        """
        self.close()  # leftovers of a killed earlier run with the same pid
        self._bridged = bridged
        veth_srv, veth_snd = f"vls{self.tag}", f"vlc{self.tag}"
        steps = [["ip", "netns", "add", self.server], ["ip", "netns", "add", self.sender]]
        if bridged:
            mid_a, mid_b = f"vma{self.tag}", f"vmb{self.tag}"
            steps += [
                ["ip", "netns", "add", self.middle],
                ["ip", "link", "add", veth_snd, "type", "veth", "peer", "name", mid_a],
                ["ip", "link", "add", veth_srv, "type", "veth", "peer", "name", mid_b],
                ["ip", "link", "set", mid_a, "netns", self.middle],
                ["ip", "link", "set", mid_b, "netns", self.middle],
                [*self.netns(self.middle), "ip", "link", "set", mid_a, "up"],
                [*self.netns(self.middle), "ip", "link", "set", mid_b, "up"],
            ]
        else:
            steps.append(["ip", "link", "add", veth_srv, "type", "veth", "peer", "name", veth_snd])
        steps += [
            ["ip", "link", "set", veth_srv, "netns", self.server],
            ["ip", "link", "set", veth_snd, "netns", self.sender],
        ]
        for ns, ip, veth in ((self.server, self.server_ip, veth_srv),
                             (self.sender, self.sender_ip, veth_snd)):  # fmt: skip
            steps.append([*self.netns(ns), "ip", "addr", "add", f"{ip}/30", "dev", veth])
        for ns, veth in ((self.server, veth_srv), (self.sender, veth_snd)):
            steps += [
                [*self.netns(ns), "ip", "link", "set", "lo", "up"],
                [*self.netns(ns), "ip", "link", "set", veth, "up"],
            ]
            if bridged:  # frames copied by a userspace bridge need their checksums filled in
                steps.append([*self.netns(ns), "ethtool", "-K", veth, "tx", "off"])
        try:
            for step in steps:
                _run(step)
            self.impair()
        except BaseException:
            self.close()
            raise
        return self

    def impair(
        self, loss_pct: float = 0.0, media: Media = "both", *, blackout: bool = False
    ) -> None:
        """Replace the rules: drop `loss_pct` % of the chosen RTP at random, or all UDP."""
        rules = []
        if blackout:
            rules.append(f"ip saddr {self.sender_ip} meta l4proto udp counter drop")
        elif loss_pct > 0:
            per_mille = round(loss_pct * 10)
            pts = {"audio": [str(OPUS_PT)], "video": [VIDEO_PTS]}
            for pt in pts["audio"] + pts["video"] if media == "both" else pts[media]:
                rules.append(
                    f"ip saddr {self.sender_ip} meta l4proto udp @th,64,2 2 @th,73,7 {pt} "
                    f"numgen random mod 1000 < {per_mille} counter drop"
                )
        body = "\n".join(f"    {rule}" for rule in rules)
        script = (
            f"table {TABLE}\nflush table {TABLE}\ntable {TABLE} {{\n  chain input {{\n"
            f"    type filter hook input priority 0; policy accept;\n{body}\n  }}\n}}\n"
        )
        _run([*self.netns(self.server), "nft", "-f", "-"], stdin=script)

    def dropped_packets(self) -> int:
        """Packets the rules have dropped so far (since the last `impair`)."""
        out = _run([*self.netns(self.server), "nft", "list", "table", *TABLE.split()])
        return sum(
            int(line.split("packets")[1].split()[0])
            for line in out.splitlines()
            if "packets" in line
        )

    @property
    def bridged(self) -> bool:
        """Whether the link runs through the delay bridge's namespace."""
        return self._bridged

    def start_bridge(self) -> None:
        """Start the delay bridge in the middle namespace (needs `create(bridged=True)`)."""
        if not self._bridged:
            raise RuntimeError("start_bridge needs a link created with bridged=True")
        self._control = Path(tempfile.mkstemp(prefix="scenestream-bridge-")[1])
        self._control.write_text("0 0\n")
        self._bridge = subprocess.Popen(
            [*self.netns(self.middle), sys.executable, "-m", "tests.support.jitter_bridge",
             f"vma{self.tag}", f"vmb{self.tag}", "--control", str(self._control)],
            cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)),
        )  # fmt: skip

    def jitter(self, jitter_ms: float, delay_ms: float = 0.0) -> None:
        """Delay the sender's UDP by `delay_ms + U(0, jitter_ms)` from now on (0, 0: none)."""
        bridge = self._bridge
        if bridge is None or bridge.poll() is not None or self._control is None:
            raise RuntimeError("the delay bridge is not running")
        self._control.write_text(f"{delay_ms} {jitter_ms}\n")
        bridge.send_signal(signal.SIGUSR1)

    def close(self) -> None:
        """Stop the bridge and delete the namespaces (veth pairs and rules go with them)."""
        bridge = self._bridge
        if bridge is not None and bridge.poll() is None:
            bridge.terminate()
            bridge.wait(10)
        if self._control is not None:
            self._control.unlink(missing_ok=True)
        for ns in (self.server, self.sender, self.middle):
            _run(["ip", "netns", "del", ns], check=False)
