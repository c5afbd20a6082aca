"""The admin API: a small JSON API on a unix socket, for `hubhop status` and `hubhop keys`.

    GET  /admin/v1/status                  the node's status (see hubhop.app.Node.status)
    GET  /admin/v1/keys[?timeout_s=S]      every member's keyring, by fingerprint
    POST /admin/v1/keys  {"op": "install" | "use" | "remove", "key": BASE64, "timeout_s": S}
                                           the command applied here and on every live member

Rules:
- Its own aiohttp app and runner on a unix socket only, apart from the public listener; no
  tokens: whoever can connect to the socket file (mode 0660: the unit's user and group) is an
  administrator.
- At start, a socket file left by a killed daemon (nothing answers on it) is replaced; a socket
  some live process answers on, or a path that is not a socket, is refused with AdminSocketError
  and touched not at all. On stop the socket file is removed, if it is still ours.
- Bad input gets a 400 with a message; a node without gossip has no keyring (409). A key
  command's per-member failures are a 200 whose report says so: the command ran.
- Keys travel in request bodies only, never in a URL (URLs end up in logs).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import errno
import logging
import os
import socket
import stat
from collections.abc import Callable
from typing import Any

from aiohttp import web

from hubhop.core.key_commands import DEFAULT_TIMEOUT_S, MAX_TIMEOUT_S
from hubhop.core.keyring import KEY_SIZES
from hubhop.io.gossip_admin import GossipAdmin, report_json

log = logging.getLogger(__name__)

SOCKET_MODE = 0o660  # the unit's user and group may connect; nobody else
# Requests are a few hundred bytes (a key, an op); 64 KiB bounds what a client can make us read.
MAX_REQUEST_BYTES = 64 * 1024
# How long to wait for an existing socket to answer a connect before calling it stale: a live
# daemon accepts at once, from its kernel backlog.
PROBE_TIMEOUT_S = 1.0


class AdminSocketError(Exception):
    """The admin socket cannot be taken (in use, not a socket, no such directory, ...)."""


def claim_socket_path(path: str) -> None:
    """Make `path` free for a new socket: remove a stale one, refuse anything else."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise AdminSocketError(f"{path} exists and is not a socket; not replacing it")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(PROBE_TIMEOUT_S)
    try:
        probe.connect(path)
    except (ConnectionRefusedError, FileNotFoundError):
        log.info("replacing the stale admin socket %s (nothing answers on it)", path)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        return
    except OSError as exc:
        if exc.errno == errno.EAGAIN:  # a full backlog: someone is there
            raise AdminSocketError(f"{path}: another process is serving on it") from None
        raise AdminSocketError(f"{path}: cannot check it: {exc.strerror or exc}") from None
    finally:
        probe.close()
    raise AdminSocketError(
        f"{path}: another daemon answers on this admin socket; stop it, or give this node "
        "its own [admin] socket"
    )


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _timeout(raw: object) -> float:
    """A request's timeout_s; ValueError with the reason when it is not usable."""
    if raw is None:
        return DEFAULT_TIMEOUT_S
    try:
        value = float(raw)  # type: ignore[arg-type]  # checked by the except
    except (TypeError, ValueError):
        raise ValueError(f"timeout_s must be a number of seconds, not {raw!r}") from None
    if not 0.0 < value <= MAX_TIMEOUT_S:
        raise ValueError(f"timeout_s must be in (0, {MAX_TIMEOUT_S:g}], not {value:g}")
    return value


def decode_key(text: object) -> bytes:
    """A base64 AES key from a request; ValueError saying what is wrong (never the key)."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("key is required: the base64 AES key (e.g. `openssl rand -base64 32`)")
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("key is not valid base64") from None
    if len(key) not in KEY_SIZES:
        raise ValueError(f"key decodes to {len(key)} bytes; AES-GCM keys are 16, 24 or 32")
    return key


class AdminServer:
    """The admin API on `path`, answering from `status` and, for a gossiping node, `gossip`."""

    def __init__(
        self,
        path: str,
        status: Callable[[], dict[str, Any]],
        gossip: Callable[[], GossipAdmin | None],
    ) -> None:
        self.path = path
        self._status = status
        self._gossip = gossip
        self._runner: web.AppRunner | None = None
        self._inode: int | None = None

    async def start(self) -> None:
        """Bind the socket (mode 0660); AdminSocketError when it cannot be taken."""
        claim_socket_path(self.path)
        app = web.Application(client_max_size=MAX_REQUEST_BYTES)
        app.router.add_get("/admin/v1/status", self._get_status)
        app.router.add_get("/admin/v1/keys", self._list_keys)
        app.router.add_post("/admin/v1/keys", self._change_keys)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            await web.UnixSite(runner, self.path).start()
            os.chmod(self.path, SOCKET_MODE)
            self._inode = os.lstat(self.path).st_ino
        except OSError as exc:
            await runner.cleanup()
            raise AdminSocketError(f"{self.path}: {exc.strerror or exc}") from None
        self._runner = runner
        log.info("admin API on %s", self.path)

    async def close(self) -> None:
        if self._runner is None:
            return
        await self._runner.cleanup()
        self._runner = None
        try:
            if os.lstat(self.path).st_ino == self._inode:  # not a successor's socket
                os.unlink(self.path)
        except FileNotFoundError:
            pass

    async def _get_status(self, request: web.Request) -> web.Response:
        return web.json_response(self._status())

    async def _list_keys(self, request: web.Request) -> web.Response:
        try:
            timeout_s = _timeout(request.query.get("timeout_s"))
        except ValueError as exc:
            return _error(400, str(exc))
        return await self._run(request, "list", None, timeout_s)

    async def _change_keys(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except (ValueError, UnicodeDecodeError):
            return _error(400, "the body must be a JSON object")
        if not isinstance(body, dict):
            return _error(400, "the body must be a JSON object")
        op = body.get("op")
        if op not in ("install", "use", "remove"):
            return _error(400, "op must be one of install, use, remove")
        try:
            key = decode_key(body.get("key"))
            timeout_s = _timeout(body.get("timeout_s"))
        except ValueError as exc:
            return _error(400, str(exc))
        return await self._run(request, op, key, timeout_s)

    async def _run(
        self, request: web.Request, op: str, key: bytes | None, timeout_s: float
    ) -> web.Response:
        gossip = self._gossip()
        if gossip is None:
            return _error(409, "this node does not gossip ([gossip] is not set): no keyring")
        try:
            report = await gossip.key_command(op, key, timeout_s)
        except ValueError as exc:
            return _error(400, str(exc))
        view = report_json(report)
        if op != "list":
            level = logging.INFO if report.ok else logging.WARNING
            outcome = "ok on every member" if report.ok else "not ok everywhere (hubhop keys list)"
            log.log(level, "keyring %s of key %s: %s", op, report.key, outcome)
        return web.json_response(view)
