"""Checking a node's TLS files before anything starts: what `hubhop check-config` and `hubhop run`
report about `[tls] ca_file`, `cert_file` and `key_file`.

Rules:
- Every fault is collected, each naming its file and key: a file that cannot be read or is not
  PEM, a key that does not match the certificate, a certificate the CA did not sign, one not yet
  valid or expired (the CA's too), one that does not name this node (peers check that name both
  ways: hubhop.core.tls_config), an extended key usage without both serverAuth and clientAuth
  (a node is server and client to its peers).
- Then OpenSSL loads them into the contexts the daemon would use (hubhop.io.peer_tls), so
  what it alone refuses is said here too, not at start.
- Nothing is started and nothing is written; `now` is an argument.
"""

from __future__ import annotations

import datetime
import itertools
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID

from hubhop.core.config import NodeConfig
from hubhop.io.peer_tls import check_loadable

SPKI = serialization.PublicFormat.SubjectPublicKeyInfo
DER = serialization.Encoding.DER


def tls_file_faults(config: NodeConfig, now: datetime.datetime) -> list[str]:
    """Every fault of the TLS files `config` names (none when it names none)."""
    tls = config.tls
    if not tls.mutual_tls:
        return []
    faults: list[str] = []
    cas = _certificates(tls.ca_file, "tls.ca_file", faults)
    chain = _certificates(tls.cert_file, "tls.cert_file", faults)
    key = _private_key(tls.key_file, faults)
    for ca in cas:
        faults.extend(_validity(ca, tls.ca_file, "tls.ca_file", now))
    if chain:
        leaf = chain[0]
        where = f"{tls.cert_file}: tls.cert_file"
        faults.extend(_validity(leaf, tls.cert_file, "tls.cert_file", now))
        if key is not None and _public(key.public_key()) != _public(leaf.public_key()):
            faults.append(f"{tls.key_file}: tls.key_file: does not match tls.cert_file")
        if cas and not _signed_by(chain, cas):
            faults.append(f"{where}: not signed by the CA in {tls.ca_file}")
        faults.extend(f"{where}: {fault}" for fault in _identity_faults(leaf, config.node.name))
    if not faults:
        faults.extend(check_loadable(tls))
    return faults


def _certificates(path: str, key: str, faults: list[str]) -> list[x509.Certificate]:
    data = _read(path, key, faults)
    if data is None:
        return []
    try:
        certificates = x509.load_pem_x509_certificates(data)
    except ValueError:
        faults.append(f"{path}: {key}: not a PEM certificate")
        return []
    return certificates


def _private_key(path: str, faults: list[str]) -> PrivateKeyTypes | None:
    data = _read(path, "tls.key_file", faults)
    if data is None:
        return None
    try:
        return serialization.load_pem_private_key(data, password=None)
    except TypeError:
        faults.append(f"{path}: tls.key_file: the key is encrypted; the daemon needs it plain")
    except ValueError as exc:
        faults.append(f"{path}: tls.key_file: not a PEM private key ({exc})")
    return None


def _read(path: str, key: str, faults: list[str]) -> bytes | None:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        faults.append(f"{path}: {key}: cannot read: {exc.strerror or exc}")
        return None


def _validity(
    certificate: x509.Certificate, path: str, key: str, now: datetime.datetime
) -> list[str]:
    if now < (start := certificate.not_valid_before_utc):
        return [f"{path}: {key}: not valid before {start:%Y-%m-%d %H:%M} UTC"]
    if now > (end := certificate.not_valid_after_utc):
        return [f"{path}: {key}: expired on {end:%Y-%m-%d %H:%M} UTC"]
    return []


def _public(key: object) -> bytes:
    return key.public_bytes(DER, SPKI)  # type: ignore[attr-defined, no-any-return]


def _signed_by(chain: Sequence[x509.Certificate], cas: Sequence[x509.Certificate]) -> bool:
    """Does the chain (leaf first, then any intermediates) lead to one of the CAs?"""
    for issued, issuer in itertools.pairwise(chain):
        if not _issued_by(issued, issuer):
            return False
    return any(_issued_by(chain[-1], ca) for ca in cas)


def _issued_by(certificate: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        certificate.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _identity_faults(leaf: x509.Certificate, node_name: str) -> list[str]:
    faults = []
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = san.get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        names = [
            str(a.value) for a in leaf.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
        ]
    if node_name not in names:
        said = ", ".join(names) or "no name"
        faults.append(
            f"names {said}, not this node {node_name!r}: peers check that a node's certificate"
            " carries its node name as a subjectAltName DNS name"
        )
    try:
        usages = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        return faults
    for usage, what in ((ExtendedKeyUsageOID.SERVER_AUTH, "serverAuth"),
                        (ExtendedKeyUsageOID.CLIENT_AUTH, "clientAuth")):  # fmt: skip
        if usage not in usages:
            faults.append(f"its extended key usage lacks {what}: a node is server and client")
    return faults
