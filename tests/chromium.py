"""Headless Chromium for end-to-end tests: found or installed, and driven over the DevTools
protocol through a pipe.

Why this way: the Chrome DevTools Protocol needs no new Python dependency (selenium and a
matching chromedriver would be two), and `--remote-debugging-pipe` carries it over two file
descriptors instead of a TCP port, so the browser listens on no address at all and there is no
DevTools URL to fish out of its stderr. Messages are JSON, each ended by a NUL byte.

Rules:
- `chromium_or_skip()` finds Debian's chromium; when it is missing and apt-get works (root),
  it installs it, bounded in time; only when neither is possible is the test skipped, with a
  message saying what was missing.
- The browser is started here and stopped by its PID (Browser.close first, then SIGKILL if it
  does not go), with flags for a container: no sandbox as root, no GPU, no /dev/shm.
- Every call is bounded in time; a browser that exits fails the call with its log's tail.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import itertools
import json
import os
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

CANDIDATES = ("chromium", "chromium-browser")
# apt-get update plus a ~100 MB package on a slow mirror: a few minutes at worst.
INSTALL_TIMEOUT_S = 600.0
# A DevTools call answers in milliseconds; a page load on a loaded 2-core box in a second or two.
CALL_TIMEOUT_S = 15.0
# Browser.close lets Chromium remove its profile and its helper processes itself.
CLOSE_TIMEOUT_S = 5.0
# Where the two pipe ends are moved before Chromium starts: above 0-4, so moving them onto 3
# and 4 (what --remote-debugging-pipe reads and writes) never overwrites one with the other.
_HIGH_FD = 10
LOG_TAIL_CHARS = 2000


def find_chromium() -> str | None:
    for name in CANDIDATES:
        found = shutil.which(name)
        if found is not None:
            return found
    return None


def chromium_or_skip() -> str:
    """The chromium executable: found, or installed with apt-get; else the test is skipped."""
    found = find_chromium()
    if found is not None:
        return found
    if shutil.which("apt-get") is None:
        pytest.skip("chromium is not installed and there is no apt-get to install it with")
    if os.geteuid() != 0:
        pytest.skip("chromium is not installed, and installing it with apt-get needs root")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    deadline = time.monotonic() + INSTALL_TIMEOUT_S
    for argv in (
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "chromium"],
    ):
        try:
            subprocess.run(
                argv,
                env=env,
                check=True,
                capture_output=True,
                timeout=max(1.0, deadline - time.monotonic()),
            )
        except subprocess.CalledProcessError as exc:
            tail = exc.stderr.decode(errors="replace")[-LOG_TAIL_CHARS:]
            pytest.skip(f"chromium is not installed and `{' '.join(argv)}` failed: {tail}")
        except subprocess.TimeoutExpired:
            pytest.skip(f"chromium is not installed and apt-get took over {INSTALL_TIMEOUT_S} s")
    found = find_chromium()
    if found is None:
        pytest.skip("apt-get installed chromium, but no chromium executable is on PATH")
    return found


class BrowserError(RuntimeError):
    pass


class Browser:
    """One headless Chromium with one page, driven over the DevTools protocol."""

    def __init__(self, executable: str, workdir: Path, width: int, height: int) -> None:
        self.log_path = workdir / "chromium.log"
        self.width = width
        to_browser_r, to_browser_w = os.pipe()
        from_browser_r, from_browser_w = os.pipe()
        child_in = fcntl.fcntl(to_browser_r, fcntl.F_DUPFD, _HIGH_FD)
        child_out = fcntl.fcntl(from_browser_w, fcntl.F_DUPFD, _HIGH_FD)
        for fd in (to_browser_r, from_browser_w):
            os.close(fd)
        flags = [
            "--headless=new",
            "--remote-debugging-pipe",
            f"--user-data-dir={workdir / 'profile'}",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            # Nothing but the page under test: no updates, sync, first-run or default apps.
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-extensions",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-default-apps",
            "--mute-audio",
            "--hide-scrollbars",
            "--password-store=basic",
            f"--window-size={width},{height}",
        ]
        if os.geteuid() == 0:
            flags.append("--no-sandbox")  # Chromium's sandbox refuses to run as root
        # A tiny exec helper puts the pipe ends on 3 and 4 (dash cannot name fds over 9), then
        # becomes Chromium: the PID started here is Chromium's own (Debian's wrapper execs too).
        helper = (
            "import os, sys; os.dup2(int(sys.argv[1]), 3); os.dup2(int(sys.argv[2]), 4); "
            "os.execv(sys.argv[3], sys.argv[3:])"
        )
        argv = [sys.executable, "-I", "-S", "-c", helper, str(child_in), str(child_out)]
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [*argv, executable, *flags, "about:blank"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                pass_fds=(child_in, child_out),
            )
        os.close(child_in)
        os.close(child_out)
        self._to = to_browser_w
        self._from = from_browser_r
        self._buffer = b""
        self._ids = itertools.count(1)
        self.session = ""
        try:
            target = self.call("Target.createTarget", {"url": "about:blank"}, session=None)
            attached = self.call(
                "Target.attachToTarget",
                {"targetId": target["targetId"], "flatten": True},
                session=None,
            )
            self.session = attached["sessionId"]
            self.resize(height)
        except BaseException:
            self.close()
            raise

    def call(
        self, method: str, params: dict[str, Any] | None = None, *, session: str | None = ""
    ) -> dict[str, Any]:
        """One DevTools command and its result; `session`: the page's (the default), or None
        for the browser itself."""
        ident = next(self._ids)
        message: dict[str, Any] = {"id": ident, "method": method, "params": params or {}}
        chosen = self.session if session == "" else session
        if chosen:
            message["sessionId"] = chosen
        self._send(json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + CALL_TIMEOUT_S
        while True:
            answer = self._receive(deadline, method)
            if answer.get("id") == ident:
                if "error" in answer:
                    raise BrowserError(f"{method}: {answer['error']}")
                result: dict[str, Any] = answer.get("result", {})
                return result

    def navigate(self, url: str) -> None:
        """Open `url` and wait until the page has loaded (scripts and styles included)."""
        self.call("Page.navigate", {"url": url})
        loaded = f"location.href === {json.dumps(url)} && document.readyState === 'complete'"
        deadline = time.monotonic() + CALL_TIMEOUT_S
        while not self.evaluate(loaded):
            if time.monotonic() > deadline:
                raise BrowserError(f"{url} did not load within {CALL_TIMEOUT_S} s")
            time.sleep(0.05)

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (a promise is awaited)."""
        result = self.call(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
        )
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression!r} threw: {result['exceptionDetails']}")
        return result["result"].get("value")

    def resize(self, height: int) -> None:
        metrics = {"width": self.width, "height": height, "deviceScaleFactor": 1, "mobile": False}
        self.call("Emulation.setDeviceMetricsOverride", metrics)

    def screenshot(self, path: Path) -> None:
        """The whole page as a PNG at `path`."""
        self.resize(1)  # the content's own height, not the window's
        height = int(self.evaluate("document.documentElement.scrollHeight"))
        self.resize(height)
        shot = self.call("Page.captureScreenshot", {"format": "png"})
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))

    def close(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(OSError):  # gone already
                self._send(json.dumps({"id": 0, "method": "Browser.close"}).encode() + b"\0")
            try:
                self.process.wait(CLOSE_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(CLOSE_TIMEOUT_S)
        for fd in (self._to, self._from):
            with contextlib.suppress(OSError):  # closed by an earlier close()
                os.close(fd)

    def log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-LOG_TAIL_CHARS:]
        except OSError:
            return ""

    def _send(self, data: bytes) -> None:
        while data:
            written = os.write(self._to, data)
            data = data[written:]

    def _receive(self, deadline: float, method: str) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BrowserError(f"{method}: no answer within {CALL_TIMEOUT_S} s")
            ready, _, _ = select.select([self._from], [], [], remaining)
            if not ready:
                continue
            chunk = os.read(self._from, 1 << 16)
            if not chunk:
                raise BrowserError(f"chromium exited during {method}:\n{self.log_tail()}")
            self._buffer += chunk
        message, _, self._buffer = self._buffer.partition(b"\0")
        answer: dict[str, Any] = json.loads(message)
        return answer
