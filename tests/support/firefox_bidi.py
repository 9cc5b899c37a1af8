"""A minimal WebDriver BiDi driver for stock Firefox, for the live-page e2e test.

Playwright's `moz-firefox` channel speaks BiDi too, but the Playwright in the venv (1.65) sends
`emulation.setMediaFeaturesOverride` on every new page, which Debian's Firefox ESR (153) answers
with `unknown command`: no page can be opened. This driver uses only long-standing BiDi commands
(session.new, browsingContext.*, script.evaluate, log events, browser.close).

Firefox runs headless on a fresh profile whose `user.js` turns on its own fake camera and
microphone without a permission prompt, offers loopback ICE candidates (the e2e service offers
127.0.0.1 only) and keeps it quiet offline. Firefox (its whole process group) is killed and the
profile removed on exit, whatever happened.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import shutil
import signal
import tempfile
from collections import deque
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import aiohttp

PrefValue = bool | int | str

FIREFOX_PREFS: dict[str, PrefValue] = {
    # Media: Firefox's own fake devices (a colour pattern and a tone), no permission prompt.
    "media.navigator.permission.disabled": True,
    "media.navigator.streams.fake": True,
    # ICE: the service under test offers 127.0.0.1 only. Firefox gathers on every interface only
    # for a page that holds camera/microphone permission (else only the default route's address,
    # none at all on a loopback-only host): `permission.disabled` records no permission, so
    # grant it by default. `ice.loopback` then adds 127.0.0.1 (off by default, meant for offline
    # tests); real addresses, not mDNS names.
    "permissions.default.camera": 1,
    "permissions.default.microphone": 1,
    "media.peerconnection.ice.loopback": True,
    "media.peerconnection.ice.obfuscate_host_addresses": False,
    "network.proxy.type": 0,
    # Quiet offline: no updates, telemetry, first-run or default-browser pages, plugin downloads.
    "app.update.auto": False,
    "app.update.disabledForTesting": True,
    "app.normandy.enabled": False,
    "browser.shell.checkDefaultBrowser": False,
    "browser.startup.page": 0,
    "browser.startup.homepage_override.mstone": "ignore",
    "startup.homepage_welcome_url": "about:blank",
    "browser.aboutwelcome.enabled": False,
    "browser.newtabpage.enabled": False,
    "browser.safebrowsing.malware.enabled": False,
    "browser.safebrowsing.phishing.enabled": False,
    "browser.safebrowsing.downloads.enabled": False,
    "browser.search.update": False,
    "datareporting.policy.dataSubmissionEnabled": False,
    "datareporting.healthreport.uploadEnabled": False,
    "toolkit.telemetry.enabled": False,
    "toolkit.telemetry.unified": False,
    "toolkit.telemetry.server": "",
    "extensions.update.enabled": False,
    "media.gmp-manager.updateEnabled": False,
    "network.captive-portal-service.enabled": False,
    "network.connectivity-service.enabled": False,
    "dom.push.connection.enabled": False,
    "services.settings.server": "",
}

LISTENING = "WebDriver BiDi listening on "
LOG_LINES = 200  # Firefox's stderr lines kept for a failure message


class BidiError(RuntimeError):
    """A BiDi command failed, or Firefox did not start."""


def firefox_binary() -> str | None:
    """Debian's `firefox-esr`, else any `firefox` on PATH."""
    return shutil.which("firefox-esr") or shutil.which("firefox")


def user_js(prefs: Mapping[str, PrefValue]) -> str:
    """A profile's `user.js` setting `prefs` (JSON literals are valid pref values)."""
    return "".join(f"user_pref({json.dumps(k)}, {json.dumps(v)});\n" for k, v in prefs.items())


def listening_url(line: str) -> str | None:
    """The BiDi session URL from Firefox's `WebDriver BiDi listening on ws://...` line."""
    _, found, rest = line.strip().partition(LISTENING)
    return rest.strip() + "/session" if found and rest.startswith("ws://") else None


class BidiConnection:
    """Commands and events over one BiDi websocket."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.page_errors: list[str] = []  # uncaught exceptions and rejections of the page
        self.console: deque[str] = deque(maxlen=LOG_LINES)
        self._reader = asyncio.create_task(self._read(), name="firefox-bidi-reader")

    async def command(
        self, method: str, params: Mapping[str, Any] | None = None, timeout_s: float = 30.0
    ) -> dict[str, Any]:
        """Send one command; its `result`, or BidiError with Firefox's message."""
        if self._reader.done():
            raise BidiError(f"{method}: connection to Firefox closed")
        ident = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[ident] = future
        try:
            await self._ws.send_json({"id": ident, "method": method, "params": dict(params or {})})
            reply = await asyncio.wait_for(future, timeout_s)
        finally:
            self._pending.pop(ident, None)
        if reply.get("type") == "error":
            raise BidiError(f"{method}: {reply.get('error')}: {reply.get('message')}")
        result: dict[str, Any] = reply.get("result", {})
        return result

    async def _read(self) -> None:
        try:
            async for frame in self._ws:
                if frame.type != aiohttp.WSMsgType.TEXT:
                    continue
                message: dict[str, Any] = json.loads(frame.data)
                if message.get("type") == "event":
                    self._on_event(message.get("method", ""), message.get("params", {}))
                elif (future := self._pending.get(message.get("id", -1))) and not future.done():
                    future.set_result(message)
        finally:
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(BidiError("connection to Firefox closed"))

    def _on_event(self, method: str, params: dict[str, Any]) -> None:
        if method != "log.entryAdded":
            return
        text = f"{params.get('level')}: {params.get('text')}"
        self.console.append(text)
        if params.get("type") == "javascript":
            self.page_errors.append(text)

    async def close(self) -> None:
        """Close the websocket and stop reading."""
        await self._ws.close()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader


class FirefoxPage:
    """The one tab of a Firefox session."""

    def __init__(self, bidi: BidiConnection, context: str) -> None:
        self.bidi = bidi
        self.context = context
        self.firefox_log: deque[str] = deque()  # Firefox's last stderr lines, for failures

    async def navigate(self, url: str) -> None:
        """Load `url` and wait until its document is complete."""
        params = {"context": self.context, "url": url, "wait": "complete"}
        await self.bidi.command("browsingContext.navigate", params)

    async def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression (awaited when a promise), through JSON."""
        wrapped = f"(async () => JSON.stringify(await ({expression})))()"
        params = {
            "expression": wrapped,
            "target": {"context": self.context},
            "awaitPromise": True,
            "resultOwnership": "none",
            "userActivation": True,  # as if a user clicked: what a real button press carries
        }
        reply = await self.bidi.command("script.evaluate", params)
        if reply.get("type") == "exception":
            details = reply.get("exceptionDetails", {})
            raise BidiError(f"{expression}: {details.get('text', details)}")
        value = reply.get("result", {}).get("value")
        return None if value is None else json.loads(value)

    async def wait_for(self, expression: str, timeout_s: float, poll_s: float = 0.1) -> Any:
        """Poll `expression` until it is truthy; its value. TimeoutError names the last value."""
        last: Any = None
        try:
            async with asyncio.timeout(timeout_s):
                while True:  # the page cannot notify us: poll it
                    last = await self.evaluate(expression)
                    if last:
                        return last
                    await asyncio.sleep(poll_s)
        except TimeoutError:
            raise TimeoutError(
                f"{expression} not truthy in {timeout_s} s (last: {last!r})"
            ) from None

    async def screenshot(self, path: Path) -> None:
        """The whole document as PNG."""
        params = {"context": self.context, "origin": "document"}
        reply = await self.bidi.command("browsingContext.captureScreenshot", params)
        png = base64.b64decode(reply["data"])
        await asyncio.to_thread(path.write_bytes, png)


@contextlib.asynccontextmanager
async def firefox_page(
    binary: str,
    *,
    prefs: Mapping[str, PrefValue] = FIREFOX_PREFS,
    width: int = 1280,
    height: int = 1000,
    start_timeout_s: float = 30.0,
) -> AsyncIterator[FirefoxPage]:
    """Headless Firefox on a fresh profile, one tab ready for commands."""
    profile = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix="scenestream-firefox-"))
    log: deque[str] = deque(maxlen=LOG_LINES)
    proc: asyncio.subprocess.Process | None = None
    drain: asyncio.Task[None] | None = None
    closing = False  # browser.close was accepted: Firefox exits by itself
    try:
        await asyncio.to_thread((profile / "user.js").write_text, user_js(prefs))
        proc = await asyncio.create_subprocess_exec(
            *[binary, "--headless", "--no-remote", "--remote-debugging-port=0"],
            *["--profile", str(profile), "about:blank"],
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,  # its own process group: content processes die with it
            # HOME inside the profile: nothing lands in the user's home, and Firefox run as
            # root refuses a HOME that another user owns.
            env={**os.environ, "HOME": str(profile), "MOZ_CRASHREPORTER_DISABLE": "1"},
        )
        url = await _wait_listening(proc, log, start_timeout_s)
        drain = asyncio.create_task(_keep(proc, log), name="firefox-stderr")
        async with aiohttp.ClientSession() as http:
            ws = await http.ws_connect(url, max_msg_size=64 * 2**20)  # screenshots are big
            bidi = BidiConnection(ws)
            try:
                page = await _open(bidi, width, height)
                page.firefox_log = log
                yield page
                with contextlib.suppress(BidiError, TimeoutError):
                    await bidi.command("browser.close", timeout_s=5.0)
                    closing = True
            finally:
                await bidi.close()
    finally:
        if proc is not None:
            await _kill(proc, grace_s=5.0 if closing else 0.0)
        if drain is not None:
            drain.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await drain
        await asyncio.to_thread(shutil.rmtree, profile, ignore_errors=True)


async def _open(bidi: BidiConnection, width: int, height: int) -> FirefoxPage:
    await bidi.command("session.new", {"capabilities": {}})
    await bidi.command("session.subscribe", {"events": ["log.entryAdded"]})
    tree = await bidi.command("browsingContext.getTree", {"maxDepth": 0})
    context = tree["contexts"][0]["context"]
    viewport = {"width": width, "height": height}
    await bidi.command("browsingContext.setViewport", {"context": context, "viewport": viewport})
    return FirefoxPage(bidi, context)


async def _wait_listening(
    proc: asyncio.subprocess.Process, log: deque[str], timeout_s: float
) -> str:
    assert proc.stderr is not None
    try:
        async with asyncio.timeout(timeout_s):
            while line := (await proc.stderr.readline()).decode(errors="replace"):
                log.append(line.rstrip())
                if url := listening_url(line):
                    return url
    except TimeoutError:
        pass
    tail = "\n".join(log)
    raise BidiError(f"Firefox did not open WebDriver BiDi in {timeout_s} s:\n{tail}")


async def _keep(proc: asyncio.subprocess.Process, log: deque[str]) -> None:
    """Drain Firefox's stderr (a full pipe would stall it), keeping the last lines."""
    assert proc.stderr is not None
    while line := await proc.stderr.readline():
        log.append(line.decode(errors="replace").rstrip())


async def _kill(proc: asyncio.subprocess.Process, grace_s: float) -> None:
    """Give Firefox `grace_s` to exit by itself, then kill its whole process group."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(proc.wait(), grace_s)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    await proc.wait()
