"""The `[admin]` section: where the daemon serves its admin API (status, keyring commands).

    [admin]
    socket = "/run/hubhop/edge.sock"

Rules:
- The admin API is served only on a unix socket, never on a TCP port: who may use it is decided
  by the socket file's owner, group and mode (0660: the unit's user and group), not by tokens.
- `socket` is an absolute path (under systemd, in the unit's RuntimeDirectory), short enough for
  a unix socket address (AF_UNIX's sun_path holds 108 bytes with the terminating NUL).
- No section, no socket: serving an API that can change the gossip keyring is an access decision
  the operator makes in the file, where `hubhop status --config FILE` also finds it; an implicit
  default could not be found by an operator's shell, which does not see the unit's environment.
"""

from __future__ import annotations

from dataclasses import dataclass

from hubhop.core.toml_table import TomlTable

# AF_UNIX's sun_path is 108 bytes on Linux, one of them the terminating NUL.
MAX_SOCKET_PATH_BYTES = 107


@dataclass(frozen=True)
class AdminConfig:
    # The admin socket's path; None: no admin API (see the module's rules for why).
    socket: str | None = None


def parse_admin(t: TomlTable) -> AdminConfig:
    """The `[admin]` table, every fault recorded on `t`."""
    socket = t.string("socket", required=True)
    if socket:
        if not socket.startswith("/"):
            t.fault("socket", f"{socket!r} must be an absolute path")
        elif socket.endswith("/"):
            t.fault("socket", f"{socket!r} names a directory; give the socket file's path")
        elif len(socket.encode()) > MAX_SOCKET_PATH_BYTES:
            t.fault(
                "socket",
                f"{socket!r} is longer than the {MAX_SOCKET_PATH_BYTES} bytes a unix socket path "
                "may have",
            )
    t.finish()
    return AdminConfig(socket=socket or None)
