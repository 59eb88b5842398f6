"""Headless Chromium driven over the DevTools protocol: open a page, wait for text, screenshot.

A few CDP calls over the websocket Chromium opens with ``--remote-debugging-port`` (the protocol
Playwright and Puppeteer speak to Chromium too). Playwright's pip package would want its own
pinned browser build, downloaded from a CDN these machines cannot reach; Debian's ``chromium``
speaks CDP as it is.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from websockets.sync.client import connect

from scripts.polling import Timeout, poll

_DEVTOOLS = re.compile(r"DevTools listening on (ws://\S+)")


class BrowserError(RuntimeError):
    pass


def executable() -> str:
    """Debian's chromium (apt, installed by setup)."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        raise BrowserError("no chromium on PATH: run `mise run setup` (it installs Debian's chromium)")
    return found


class Browser:
    """One headless Chromium with one page; a context manager that stops the browser by its PID."""

    def __init__(self, *, width: int = 1440, height: int = 1000, start_timeout_s: float = 30.0) -> None:
        self._profile = tempfile.mkdtemp(prefix="harness-chromium-")
        args = [executable(), "--headless=new", "--remote-debugging-port=0", f"--user-data-dir={self._profile}",
                "--no-first-run", "--no-default-browser-check", "--disable-gpu", "--disable-extensions",
                "--disable-dev-shm-usage", "--hide-scrollbars", f"--window-size={width},{height}"]
        # Chromium refuses to start as root with its sandbox on; its sandbox guards against hostile
        # pages, and this browser only ever opens the harness's own loopback UI.
        if os.geteuid() == 0:
            args.append("--no-sandbox")
        self._proc = subprocess.Popen([*args, "about:blank"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.PIPE, text=True)
        self._ids = itertools.count(1)
        self._exits = contextlib.ExitStack()
        try:
            browser_ws = self._devtools_url(start_timeout_s)
            # websockets wants its connection used as a context manager; closed in close().
            self._ws = self._exits.enter_context(connect(browser_ws, max_size=64 * 1024 * 1024,
                                                         open_timeout=start_timeout_s))
            target = self._call("Target.createTarget", url="about:blank")["targetId"]
            self._session = self._call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
            self._call("Page.enable", session=True)
        except BaseException:
            self.close()
            raise

    def _devtools_url(self, timeout_s: float) -> str:
        assert self._proc.stderr is not None
        deadline = time.monotonic() + timeout_s
        seen: list[str] = []
        while time.monotonic() < deadline:
            line = self._proc.stderr.readline()
            if not line:
                break
            seen.append(line.rstrip())
            if m := _DEVTOOLS.search(line):
                return m.group(1)
        raise BrowserError("chromium did not open its DevTools socket: " + " | ".join(seen[-5:]))

    def _call(self, method: str, *, session: bool = False, timeout_s: float = 30.0, **params: Any) -> dict[str, Any]:
        call_id = next(self._ids)
        message: dict[str, Any] = {"id": call_id, "method": method, "params": params}
        if session:
            message["sessionId"] = self._session
        self._ws.send(json.dumps(message))
        deadline = time.monotonic() + timeout_s
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BrowserError(f"{method}: no answer within {timeout_s} s")
            reply = json.loads(self._ws.recv(timeout=remaining))
            if reply.get("id") != call_id:
                continue  # an event, or a reply to nobody still waiting
            if "error" in reply:
                raise BrowserError(f"{method}: {reply['error'].get('message')}")
            result: dict[str, Any] = reply.get("result", {})
            return result

    def goto(self, url: str) -> None:
        reply = self._call("Page.navigate", session=True, url=url)
        if reply.get("errorText"):
            raise BrowserError(f"could not open {url}: {reply['errorText']}")

    def evaluate(self, expression: str) -> Any:
        reply = self._call("Runtime.evaluate", session=True, expression=expression, returnByValue=True)
        if "exceptionDetails" in reply:
            raise BrowserError(f"{expression!r} raised: {reply['exceptionDetails'].get('text')}")
        return reply["result"].get("value")

    def text(self) -> str:
        return str(self.evaluate("document.body ? document.body.innerText : ''") or "")

    def wait_for_text(self, wanted: list[str], timeout_s: float = 30.0, *, gone: tuple[str, ...] = ("Loading",)) -> str:
        """The page's visible text once every string in ``wanted`` is in it and none of ``gone``
        (the UI renders asynchronously from GraphQL, with "Loading..." placeholders meanwhile);
        the error names what never appeared or never went."""
        page = ""

        def shown() -> bool:
            nonlocal page
            page = self.text()
            return all(w in page for w in wanted) and not any(g in page for g in gone)

        try:
            poll(f"{wanted} on the page", shown, timeout_s, 0.25)
        except Timeout as exc:
            missing = [w for w in wanted if w not in page]
            lingering = [g for g in gone if g in page]
            raise BrowserError(f"never shown: {missing}, never gone: {lingering}; the page said: {page[:600]!r}") from exc
        return page

    def screenshot(self, path: Path) -> Path:
        data = self._call("Page.captureScreenshot", session=True, format="png")["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        self._exits.close()
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        if self._proc.stderr is not None:
            self._proc.stderr.close()
        shutil.rmtree(self._profile, ignore_errors=True)

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *_exc: tuple[type[BaseException] | None, BaseException | None, TracebackType | None]) -> None:
        self.close()



