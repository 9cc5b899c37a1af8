"""Requests aiohttp refuses before any handler runs, logged without flooding the log.

aiohttp answers a request its parser refuses (a raw UTF-8 path, a header over its size limit,
control bytes in a header) with 400 and logs each at ERROR with a traceback: one client can fill
the log. `RejectedRequestLog` stands in for aiohttp's server logger: such refusals become one
WARNING line (no traceback) per client address per interval, counted in
`scenestream_http_refused_total{reason="malformed_request"}`; everything else passes through.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from aiohttp.http_exceptions import HttpProcessingError

from stream.metrics import Metrics

logger = logging.getLogger(__name__)

REFUSED_MESSAGE = "Error handling request"  # what aiohttp's RequestHandler.handle_error logs


class RejectedRequestLog(logging.LoggerAdapter[logging.Logger]):
    """aiohttp's server logger, with parser refusals logged at most once per address and
    `interval_s`; remembers at most `max_addresses` addresses (LRU)."""

    def __init__(
        self,
        metrics: Metrics,
        *,
        interval_s: float = 60.0,
        max_addresses: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(logging.getLogger("aiohttp.server"), {})
        self._refused = metrics.http_refused.labels(reason="malformed_request")
        self._interval_s, self._max, self._clock = interval_s, max_addresses, clock
        self._last: OrderedDict[str, tuple[float, int]] = OrderedDict()  # address -> (t, muted)

    def exception(self, msg: object, *args: Any, exc_info: Any = True, **kwargs: Any) -> None:
        """aiohttp's `log_exception`: a parser refusal is summarised, anything else kept."""
        if (
            isinstance(msg, str)
            and msg.startswith(REFUSED_MESSAGE)
            and isinstance(exc_info, HttpProcessingError)
        ):
            self._refusal(str(args[0]) if args else "unknown", exc_info)
            return
        super().exception(msg, *args, exc_info=exc_info, **kwargs)

    def _refusal(self, address: str, exc: HttpProcessingError) -> None:
        self._refused.inc()
        now = self._clock()
        last, muted = self._last.pop(address, (float("-inf"), 0))
        if now - last < self._interval_s:
            self._last[address] = (last, muted + 1)
            return
        self._last[address] = (now, 0)
        while len(self._last) > self._max:
            self._last.popitem(last=False)
        logger.warning(
            "request refused by the HTTP parser",
            extra={"client": address, "status": exc.code, "error": type(exc).__name__,
                   "muted_since_last": muted},
        )  # fmt: skip
