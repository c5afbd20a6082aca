"""A private CA and node certificates for a lab's mutual TLS: never for a deployment.

An operator brings their own PKI (or openssl); a lab, a test or a demo on one machine makes a
throwaway one here.

Rules:
- `write_lab_pki(directory, names)` writes `ca.pem` (the CA's certificate), `ca-key.pem`, and per
  node `NAME.pem` and `NAME-key.pem`: what `[tls] ca_file`, `cert_file` and `key_file` name
  (`LabPki.tls_section`).
- A node certificate carries the node name as its subjectAltName DNS name and as its CN, and
  both serverAuth and clientAuth: a node is server and client to its peers. A fresh random
  serial each time, so a reissued certificate is told apart from the one it replaces.
- Keys are ECDSA P-256: made in a millisecond, and the handshake's cheapest signature.
- Keys are written readable by their owner only.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# A lab runs for minutes to days; a year never expires under it, and nothing outlives the lab.
LAB_VALID_DAYS = 365
# Certificates start an hour back, so a clock a little behind the one that issued them agrees.
BACKDATE = datetime.timedelta(hours=1)


@dataclass(frozen=True)
class LabCa:
    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey
    cert_path: Path
    key_path: Path

    @staticmethod
    def load(directory: Path) -> LabCa:
        """The CA `write_lab_pki` wrote into `directory`."""
        cert_path, key_path = directory / "ca.pem", directory / "ca-key.pem"
        certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return LabCa(certificate, key, cert_path, key_path)


@dataclass(frozen=True)
class LabPki:
    directory: Path
    ca: LabCa

    def cert(self, name: str) -> Path:
        return self.directory / f"{name}.pem"

    def key(self, name: str) -> Path:
        return self.directory / f"{name}-key.pem"

    def tls_section(self, name: str, peer_listen: str) -> str:
        """The `[tls]` section of node `name`'s config, its peer listener at `peer_listen`."""
        return (
            f'[tls]\nca_file = "{self.ca.cert_path}"\ncert_file = "{self.cert(name)}"\n'
            f'key_file = "{self.key(name)}"\npeer_listen = "{peer_listen}"\n'
        )

    def issue(self, name: str, *, valid_days: int = LAB_VALID_DAYS, as_name: str = "") -> int:
        """(Re)issue node `name`'s certificate and key; returns its serial. `as_name`: the
        name the certificate carries, when it is not `name` (a test's impostor)."""
        return issue_node_cert(
            self.ca, as_name or name, self.cert(name), self.key(name), valid_days=valid_days
        )


def write_lab_pki(directory: Path, names: list[str] | tuple[str, ...]) -> LabPki:
    """A new CA in `directory` and a certificate for each node of `names`."""
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hubhop lab CA")])
    certificate = (
        _builder(subject, subject, key.public_key(), now, LAB_VALID_DAYS)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(key, hashes.SHA256())
    )
    ca = LabCa(certificate, key, directory / "ca.pem", directory / "ca-key.pem")
    _write(ca.cert_path, certificate.public_bytes(serialization.Encoding.PEM))
    _write_key(ca.key_path, key)
    pki = LabPki(directory, ca)
    for name in names:
        pki.issue(name)
    return pki


def issue_node_cert(
    ca: LabCa, name: str, cert_path: Path, key_path: Path, *, valid_days: int = LAB_VALID_DAYS
) -> int:
    """A key and a certificate naming node `name`, signed by `ca`; returns the serial."""
    now = datetime.datetime.now(datetime.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    certificate = (
        _builder(subject, ca.certificate.subject, key.public_key(), now, valid_days)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), False
        )
        .sign(ca.key, hashes.SHA256())
    )
    _write_key(key_path, key)
    _write(cert_path, certificate.public_bytes(serialization.Encoding.PEM))
    return certificate.serial_number


def _builder(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    now: datetime.datetime,
    valid_days: int,
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + datetime.timedelta(days=valid_days))
    )


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    _write(path, pem, mode=0o600)


def _write(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Written beside and renamed over, so a daemon reloading meanwhile never reads half."""
    partial = path.with_name(path.name + ".tmp")
    partial.write_bytes(data)
    partial.chmod(mode)
    partial.replace(path)
