"""A one-line progress bar on stderr (a TTY redraws in place; logs get one line per phase)."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class ProgressBar:
    """`label [#####-----] done/total  extra  elapsed`, redrawn at most every 0.2 s."""

    def __init__(self, label: str, total: int, stream: TextIO | None = None) -> None:
        self.label = label
        self.total = max(total, 1)
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.started = time.monotonic()
        self._last_draw = 0.0
        self.extra = ""

    def update(self, done: int, extra: str = "") -> None:
        """Move to `done` of `total`; `extra` is shown after the counts (loss, F1…)."""
        self.extra = extra or self.extra
        now = time.monotonic()
        if self.tty and (now - self._last_draw >= 0.2 or done >= self.total):
            self._last_draw = now
            self.stream.write("\r" + self._line(done))
            self.stream.flush()

    def __call__(self, done: int, total: int) -> None:
        """Progress callback form: `(done, total)`."""
        self.total = max(total, 1)
        self.update(done)

    def close(self, done: int | None = None, extra: str = "") -> None:
        """Final state of the bar, then a newline."""
        self.extra = extra or self.extra
        line = self._line(self.total if done is None else done)
        self.stream.write(("\r" if self.tty else "") + line + "\n")
        self.stream.flush()

    def _line(self, done: int) -> str:
        width = 24
        filled = int(width * min(done, self.total) / self.total)
        elapsed = int(time.monotonic() - self.started)
        bar = "#" * filled + "-" * (width - filled)
        clock = f"{elapsed // 60:02d}:{elapsed % 60:02d}"
        return f"{self.label} [{bar}] {done}/{self.total} {self.extra} {clock}".rstrip()
