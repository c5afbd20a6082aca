"""The [tls] section and its files: what `hubhop check-config` tells an operator, before anything
starts. A lab PKI (hubhop.lab.certs) is the good case; each test then breaks one thing."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest

from hubhop.cli import main
from hubhop.core.config import ConfigError, NodeConfig, parse_config
from hubhop.io.tls_files import tls_file_faults
from hubhop.lab.certs import LabPki, write_lab_pki

KEY = "AAECAwQFBgcICQoLDA0ODw=="
EX_CONFIG = 78
NOW = datetime.datetime.now(datetime.UTC)


def config_text(pki: LabPki | None, name: str = "edge-a") -> str:
    text = (
        f'[node]\nname = "{name}"\nrole = "edge"\n[http]\nlisten = "127.0.64.20:8080"\n'
        f'[gossip]\nbind = "127.0.64.20:7946"\nkeys = ["{KEY}"]\n'
    )
    return text if pki is None else text + pki.tls_section(name, "127.0.64.20:8443")


@pytest.fixture
def pki(tmp_path: Path) -> LabPki:
    return write_lab_pki(tmp_path / "pki", ["edge-a", "city-b"])


def faults(pki: LabPki, now: datetime.datetime = NOW) -> list[str]:
    config: NodeConfig = parse_config(config_text(pki), "node.toml")
    return tls_file_faults(config, now)


def test_a_lab_pki_passes_and_check_config_says_ok(
    pki: LabPki, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert faults(pki) == []
    path = tmp_path / "node.toml"
    path.write_text(config_text(pki))
    assert main(["check-config", str(path)]) == 0
    assert "ok (node edge-a" in capsys.readouterr().out


def test_a_key_that_does_not_match_the_certificate_is_a_fault_and_exits_78(
    pki: LabPki, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pki.key("edge-a").write_bytes(pki.key("city-b").read_bytes())
    fault = f"{pki.key('edge-a')}: tls.key_file: does not match tls.cert_file"
    assert faults(pki) == [fault]
    path = tmp_path / "node.toml"
    path.write_text(config_text(pki))
    assert main(["check-config", str(path)]) == EX_CONFIG
    assert capsys.readouterr().err.splitlines() == [fault]


def test_missing_and_unreadable_files_are_named(pki: LabPki) -> None:
    pki.key("edge-a").unlink()
    pki.ca.cert_path.write_text("not a certificate\n")
    found = faults(pki)
    assert f"{pki.ca.cert_path}: tls.ca_file: not a PEM certificate" in found
    assert f"{pki.key('edge-a')}: tls.key_file: cannot read: No such file or directory" in found


def test_a_certificate_of_another_ca_is_a_fault(pki: LabPki, tmp_path: Path) -> None:
    other = write_lab_pki(tmp_path / "other", ["edge-a"])
    pki.cert("edge-a").write_bytes(other.cert("edge-a").read_bytes())
    pki.key("edge-a").write_bytes(other.key("edge-a").read_bytes())
    assert faults(pki) == [
        f"{pki.cert('edge-a')}: tls.cert_file: not signed by the CA in {pki.ca.cert_path}"
    ]


def test_an_expired_certificate_and_one_naming_another_node_are_faults(pki: LabPki) -> None:
    later = NOW + datetime.timedelta(days=400)
    found = faults(pki, later)
    assert any(f.startswith(f"{pki.cert('edge-a')}: tls.cert_file: expired on") for f in found)
    assert any(f.startswith(f"{pki.ca.cert_path}: tls.ca_file: expired on") for f in found)
    pki.issue("edge-a", as_name="city-b")
    (fault,) = faults(pki)
    assert "names city-b, not this node 'edge-a'" in fault


def test_a_node_that_gossips_must_choose_mutual_tls_or_say_plaintext() -> None:
    with pytest.raises(ConfigError) as error:
        parse_config(config_text(None), "node.toml")
    assert any("say [tls] plaintext = true for a lab" in f for f in error.value.faults)
    lab = parse_config(config_text(None) + "[tls]\nplaintext = true\n", "node.toml")
    assert lab.tls.plaintext and not lab.tls.mutual_tls


def test_a_wildcard_peer_listener_needs_an_advertised_address(pki: LabPki) -> None:
    text = config_text(pki).replace("127.0.64.20:8443", "0.0.0.0:8443")
    with pytest.raises(ConfigError, match=r"tls\.peer_listen: 0\.0\.0\.0 is a wildcard"):
        parse_config(text, "node.toml")
    same = config_text(pki).replace("127.0.64.20:8443", "127.0.64.20:8080")
    with pytest.raises(ConfigError, match=r"tls\.peer_listen: must differ from http\.listen"):
        parse_config(same, "node.toml")
