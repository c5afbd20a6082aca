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
  one apps call). Its address is what this node's record advertises, so a wildcard needs
  `http.advertise`, and it cannot be the app listener's own address.
- A node is known on the data plane by its certificate: a DNS name in its subjectAltName (the
  subject's CN only when it has no subjectAltName) is its node name. Peers check it both ways:
  the client asks for the peer's node name (server_hostname), the server checks that the
  client's certificate names the node the request says sent it.
- A node that gossips must say which: a section left out is a fault, not plain TCP.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

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


CHOOSE_TLS = (
    "a node that gossips carries requests to its peers: give [tls] ca_file, cert_file, key_file"
    " and peer_listen for mutual TLS, or say [tls] plaintext = true for a lab on one machine"
)


def peer_listen_faults(
    config: TlsConfig,
    http_listen: tuple[str, int],
    advertise: str | None,
    wildcards: frozenset[str],
) -> list[tuple[str, str]]:
    """(key, message) for a peer listener peers could not be told of, or that is the app
    listener's own address."""
    if config.peer_listen is None:
        return []
    host, port = config.peer_listen
    faults = []
    if host in wildcards and advertise is None:
        faults.append(
            (
                "peer_listen",
                f"{host} is a wildcard: peers need the address they reach this node at"
                " (set http.advertise)",
            )
        )
    if port != 0 and config.peer_listen == http_listen:
        faults.append(("peer_listen", "must differ from http.listen: apps call that one"))
    return faults


def cert_node_names(peercert: Mapping[str, Any] | None) -> tuple[str, ...]:
    """The node names a certificate proves, from its decoded form (`SSLSocket.getpeercert()`):
    the DNS names of its subjectAltName, else its subject's common name."""
    if not peercert:
        return ()
    dns = tuple(value for kind, value in peercert.get("subjectAltName", ()) if kind == "DNS")
    if dns or peercert.get("subjectAltName"):
        return dns
    return tuple(
        value for rdn in peercert.get("subject", ()) for key, value in rdn if key == "commonName"
    )
