"""systemd's notify protocol, written by hand (no python-systemd, no libsystemd).

The protocol, as sd_notify(3) and sd_watchdog_enabled(3) describe it:
- The service manager puts the address of its notify socket in `$NOTIFY_SOCKET`. An address that
  starts with `/` is a filesystem path; one that starts with `@` names a socket in Linux's abstract
  namespace, where the `@` stands for a leading NUL byte. When the variable is unset the service is
  not supervised that way and every notification is silently skipped.
- A notification is ONE datagram on an AF_UNIX SOCK_DGRAM socket: newline-separated `KEY=VALUE`
  assignments, so no value may contain a newline. Well-known keys used here: `READY=1` (start-up
  or reload finished), `STATUS=<free text>` (shown by `systemctl status`), `STOPPING=1`,
  `RELOADING=1` (with `MONOTONIC_USEC=<CLOCK_MONOTONIC in microseconds>` in the same datagram:
  `Type=notify-reload` on systemd 253+ pairs the two to know which reload the READY=1 ends), and
  `WATCHDOG=1` (keep-alive).
- The watchdog is on when `$WATCHDOG_USEC` is set and `$WATCHDOG_PID` is unset or is this
  process's PID (otherwise the variables were inherited from a parent and are not for us). The
  manager acts when it hears nothing for WATCHDOG_USEC, and asks for a ping every half of that.

Rules this module keeps: sending never blocks (the socket is non-blocking) and never raises into
the daemon: a lost notification must not take down a node that is serving traffic. The first
failed send is logged at warning, later ones at debug, so a missing socket does not flood the log.
A malformed notification (a newline in a value, a bad key) is a programming error and does raise
ValueError, before anything is sent.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import socket
import time
from collections.abc import Mapping
from types import TracebackType

logger = logging.getLogger(__name__)

# Keys are environment-variable-like names; systemd ignores the rest, we refuse it early.
_KEY_PATTERN = re.compile(r"^[A-Z_][A-Z0-9_]*$")


def _check_line(line: str) -> str:
    if "\n" in line or "\r" in line or "\0" in line:
        raise ValueError(f"sd_notify assignment must be one line without NUL: {line!r}")
    key, sep, _ = line.partition("=")
    if not sep or not _KEY_PATTERN.match(key):
        raise ValueError(f"sd_notify assignment must be KEY=VALUE with an upper-case key: {line!r}")
    return line


def _value(value: object) -> str:
    # systemd's booleans are 1/0; str(True) would send "True", which it does not read.
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def _address(notify_socket: str) -> bytes | None:
    """The sockaddr for `$NOTIFY_SOCKET`, or None when it names nothing we can send to."""
    if notify_socket.startswith("/"):
        return os.fsencode(notify_socket)
    if notify_socket.startswith("@") and len(notify_socket) > 1:
        return b"\0" + os.fsencode(notify_socket[1:])
    return None


def monotonic_usec() -> int:
    """CLOCK_MONOTONIC in microseconds: the clock systemd reads for MONOTONIC_USEC."""
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


def watchdog_interval_from(environ: Mapping[str, str], pid: int | None = None) -> float | None:
    """Seconds between keep-alives asked for by `environ`, or None when no watchdog is on.

    Half of `$WATCHDOG_USEC`, when that is a positive integer and `$WATCHDOG_PID` is unset or
    equals `pid` (default: this process).
    """
    usec_text = environ.get("WATCHDOG_USEC")
    if usec_text is None:
        return None
    try:
        usec = int(usec_text)
    except ValueError:
        logger.warning("ignoring WATCHDOG_USEC=%r: not an integer", usec_text)
        return None
    if usec <= 0:
        return None
    pid_text = environ.get("WATCHDOG_PID")
    if pid_text is not None:
        try:
            watchdog_pid = int(pid_text)
        except ValueError:
            return None
        if watchdog_pid != (os.getpid() if pid is None else pid):
            return None
    return usec / 1_000_000 / 2


class SdNotifier:
    """Sends notifications to the service manager named by `$NOTIFY_SOCKET`; a no-op without one."""

    def __init__(self, notify_socket: str | None, environ: Mapping[str, str] | None = None) -> None:
        self._environ: dict[str, str] = dict(environ or {})
        self._notify_socket = notify_socket or None
        self._address: bytes | None = None
        self._sock: socket.socket | None = None
        self._warned = False
        if self._notify_socket is None:
            return
        address = _address(self._notify_socket)
        if address is None:
            logger.warning(
                "NOTIFY_SOCKET=%r is not a path or an @abstract name; notifications disabled",
                self._notify_socket,
            )
            return
        try:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        except OSError as exc:
            logger.warning("cannot create the sd_notify socket: %s; notifications disabled", exc)
            return
        sock.setblocking(False)
        self._address = address
        self._sock = sock

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> SdNotifier:
        """A notifier for the manager named in `environ` (default: this process's environment)."""
        env = os.environ if environ is None else environ
        return cls(env.get("NOTIFY_SOCKET"), env)

    @property
    def enabled(self) -> bool:
        """True while there is a socket to send to (NOTIFY_SOCKET set and usable, not closed)."""
        return self._sock is not None

    @property
    def notify_socket(self) -> str | None:
        """`$NOTIFY_SOCKET` as given, for logs."""
        return self._notify_socket

    def watchdog_interval_s(self) -> float | None:
        """How often to send WATCHDOG=1 (half of `$WATCHDOG_USEC`), or None when not asked."""
        return watchdog_interval_from(self._environ)

    def notify(self, *lines: str, **fields: object) -> bool:
        """Send one datagram made of `lines` ("KEY=VALUE") and `fields` (KEY=value; True is 1).

        Returns True when the datagram went out, False when there is no manager or the send
        failed (logged, never raised). Raises ValueError for a malformed assignment.
        """
        assignments = [_check_line(line) for line in lines]
        assignments += [_check_line(f"{key}={_value(value)}") for key, value in fields.items()]
        if not assignments:
            raise ValueError("sd_notify needs at least one assignment")
        if self._sock is None or self._address is None:
            return False
        payload = "\n".join(assignments).encode("utf-8")
        try:
            self._sock.sendto(payload, self._address)
        except OSError as exc:
            level = logging.DEBUG if self._warned else logging.WARNING
            self._warned = True
            logger.log(
                level,
                "sd_notify to %s failed: %s (the daemon keeps running)",
                self._notify_socket,
                exc,
            )
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        """Start-up (or a reload) is complete; optionally say what the node is doing."""
        if status is None:
            return self.notify(READY=1)
        return self.notify(READY=1, STATUS=status)

    def status(self, text: str) -> bool:
        """A one-line status for `systemctl status`."""
        return self.notify(STATUS=text)

    def stopping(self, status: str | None = None) -> bool:
        """Shutdown has begun."""
        if status is None:
            return self.notify(STOPPING=1)
        return self.notify(STOPPING=1, STATUS=status)

    def reloading(self, status: str | None = None) -> bool:
        """A reload has begun; READY=1 must follow when it ends (applied or refused)."""
        if status is None:
            return self.notify(RELOADING=1, MONOTONIC_USEC=monotonic_usec())
        return self.notify(RELOADING=1, MONOTONIC_USEC=monotonic_usec(), STATUS=status)

    def watchdog(self) -> bool:
        """Keep-alive: the event loop is still turning."""
        return self.notify(WATCHDOG=1)

    def close(self) -> None:
        """Close the socket; later notifications are no-ops. Safe to call twice."""
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()

    def __enter__(self) -> SdNotifier:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SdNotifier(notify_socket={self._notify_socket!r}, enabled={self.enabled})"


async def watchdog_loop(notifier: SdNotifier, interval_s: float) -> None:
    """Send WATCHDOG=1 now and then every `interval_s` seconds, until cancelled.

    Runs as a task on the daemon's own event loop on purpose: when the loop is blocked the pings
    stop, and systemd restarts a node that can no longer serve.
    """
    if not interval_s > 0:
        raise ValueError(f"watchdog interval must be positive, got {interval_s}")
    while True:
        notifier.watchdog()
        await asyncio.sleep(interval_s)
