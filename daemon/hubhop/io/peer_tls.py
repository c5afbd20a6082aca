"""The SSL contexts of the data plane between daemons: one to serve peers, one to call them.

Rules:
- Both sides prove themselves with this node's certificate and trust only the private CA
  (`[tls] ca_file`); the system's public CAs are never loaded. TLS 1.2 is the floor, 1.3 what
  two hubhop daemons agree on.
- The server context requires a client certificate (CERT_REQUIRED). The client context checks
  that the peer's certificate names the node it meant to reach (`server_hostname` is the node
  name, check_hostname on), so the node that answers is the node the route chose.
- Reload (`reload`, on SIGHUP) reads the files again into the same two contexts, so every
  handshake after it uses them and the connections already open keep theirs. The files are
  first tried in scratch contexts: a file that does not load, or a key that does not match its
  certificate, leaves the running certificates in place and says why. A CA reloaded is added to
  those trusted; one taken out of the file stays trusted until the restart (OpenSSL's store only
  grows), so a CA rotation runs both CAs for a while anyway.
- The paths are the config's; changing them needs a restart (hubhop.app.restart_only_changes).
"""

from __future__ import annotations

import logging
import ssl

from hubhop.core.config import ConfigError
from hubhop.core.tls_config import TlsConfig

log = logging.getLogger(__name__)


class PeerTls:
    """The server and client contexts of one node's peer connections."""

    def __init__(self, config: TlsConfig) -> None:
        assert config.mutual_tls, "PeerTls is for a node with [tls] files"
        self.config = config
        self.server = _context(ssl.PROTOCOL_TLS_SERVER)
        self.client = _context(ssl.PROTOCOL_TLS_CLIENT)
        self._load_into(self.server, self.client)

    def reload(self) -> bool:
        """Read the files again into the live contexts; False (and the old ones kept, the fault
        logged) when they do not load."""
        try:
            self._load_into(_context(ssl.PROTOCOL_TLS_SERVER), _context(ssl.PROTOCOL_TLS_CLIENT))
        except ConfigError as error:
            for fault in error.faults:
                log.error("TLS reload refused, keeping the running certificates: %s", fault)
            return False
        self._load_into(self.server, self.client)
        log.info("TLS certificates reloaded from %s", self.config.cert_file)
        return True

    def _load_into(self, *contexts: ssl.SSLContext) -> None:
        config = self.config
        for context in contexts:
            try:
                context.load_verify_locations(cafile=config.ca_file)
            except (OSError, ValueError) as exc:
                raise ConfigError([f"{config.ca_file}: tls.ca_file: {_why(exc)}"]) from None
            try:
                context.load_cert_chain(config.cert_file, config.key_file)
            except (OSError, ValueError) as exc:
                raise ConfigError(
                    [f"{config.cert_file}: tls.cert_file with tls.key_file: {_why(exc)}"]
                ) from None


def read_bytes(path: str) -> bytes:
    """A TLS file's bytes (PEM), for grpc's credentials, which take bytes rather than paths."""
    with open(path, "rb") as file:
        return file.read()


def check_loadable(config: TlsConfig) -> list[str]:
    """Faults OpenSSL itself finds in the files, as `hubhop check-config` reports them."""
    try:
        PeerTls(config)
    except ConfigError as error:
        return error.faults
    return []


def _context(protocol: ssl._SSLMethod) -> ssl.SSLContext:
    context = ssl.SSLContext(protocol)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if protocol == ssl.PROTOCOL_TLS_SERVER:
        context.verify_mode = ssl.CERT_REQUIRED
    # PROTOCOL_TLS_CLIENT already has check_hostname on and CERT_REQUIRED.
    return context


def _why(exc: OSError | ValueError) -> str:
    if isinstance(exc, ssl.SSLError):
        return f"{exc.reason or exc}".lower().replace("_", " ")
    if isinstance(exc, OSError):
        return f"cannot read: {exc.strerror or exc}"
    return str(exc)
