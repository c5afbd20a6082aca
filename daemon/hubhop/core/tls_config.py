"""The data plane's transport between daemons: mutual TLS with a private CA, or, for a lab only,
plain TCP said out loud.

Rules:
- `[tls]` names the PEM files a daemon proves itself with and checks its peers against:
  `ca_file` (the private CA), `cert_file` and `key_file` (this node's certificate and key).
  Under systemd they are LoadCredential= files, so the paths are absolute.
- `plaintext = true` is the only way to carry requests between daemons unencrypted, and it
  excludes the files: a lab on one machine says so, a production node never drifts into it by
  leaving a section out.
- `peer_listen` is where peers reach this daemon over mTLS (its own listener, apart from the
  one apps call).
"""

from __future__ import annotations

from dataclasses import dataclass

TLS_FILES = ("ca_file", "cert_file", "key_file")


@dataclass(frozen=True)
class TlsConfig:
    # True: plain TCP between daemons, for a lab on one machine only.
    plaintext: bool = False
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    # host:port of the mTLS listener peers reach; None with plaintext (peers use http.listen).
    peer_listen: tuple[str, int] | None = None

    @property
    def mutual_tls(self) -> bool:
        return not self.plaintext and bool(self.cert_file)


def tls_faults(config: TlsConfig) -> list[tuple[str, str]]:
    """(key, message) for every inconsistency of a [tls] section read key by key."""
    faults = []
    given = [name for name in TLS_FILES if getattr(config, name)]
    if config.plaintext:
        for name in given + (["peer_listen"] if config.peer_listen else []):
            faults.append(
                (name, "plaintext = true carries no TLS settings; remove one or the other")
            )
    else:
        for name in TLS_FILES:
            if not getattr(config, name):
                faults.append((name, "missing: mutual TLS needs ca_file, cert_file and key_file"))
        if config.peer_listen is None:
            faults.append(("peer_listen", "missing: where peers reach this node over mutual TLS"))
    for name in given:
        if not getattr(config, name).startswith("/"):
            faults.append((name, f"{getattr(config, name)!r} must be an absolute path"))
    return faults
