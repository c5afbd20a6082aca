"""The example configs shipped in systemd/: valid, one per role, runnable together on loopback."""

from __future__ import annotations

import base64
import ipaddress
import shutil
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from hubhop.cli import main as hubhop_cli
from hubhop.core.config import ROLES, NodeConfig, parse_config
from hubhop.lab.certs import write_lab_pki

EXAMPLES = Path(__file__).resolve().parent.parent / "systemd"
FILES = sorted(EXAMPLES.glob("*.toml"))


def load(path: Path) -> NodeConfig:
    return parse_config(path.read_text(encoding="utf-8"), str(path))


def test_examples_exist() -> None:
    assert FILES, f"no example configs in {EXAMPLES}"


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_example_is_valid(path: Path) -> None:
    config = load(path)
    assert config.backends, "an example node should front at least one backend"
    # The file is named after its role, so an operator picks the right one.
    assert path.stem == config.node.role


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_example_passes_check_config_with_its_credentials(path: Path, tmp_path: Path) -> None:
    """What the unit's ExecStartPre sees: the example with the credentials systemd hands it
    (here in a folder of the test's, with a throwaway CA), checked by `hubhop check-config`."""
    name = load(path).node.name
    pki = write_lab_pki(tmp_path / "pki", [name])
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    shutil.copy(pki.ca.cert_path, credentials / "tls-ca.pem")
    shutil.copy(pki.cert(name), credentials / "tls-cert.pem")
    shutil.copy(pki.key(name), credentials / "tls-key.pem")
    # One 32-byte AES key, base64, as `[gossip] keyring_file` reads it.
    (credentials / "gossip-keyring").write_text(base64.b64encode(bytes(range(32))).decode())
    text = path.read_text(encoding="utf-8")
    unit_credentials = f"/run/credentials/hubhop@{path.stem}.service"
    assert unit_credentials in text
    installed = tmp_path / path.name
    installed.write_text(text.replace(unit_credentials, str(credentials)), encoding="utf-8")
    assert hubhop_cli(["check-config", str(installed)]) == 0


def test_every_role_has_an_example() -> None:
    roles = {load(path).node.role for path in FILES}
    assert roles == set(ROLES)


def test_examples_run_together_on_loopback() -> None:
    configs = [load(path) for path in FILES]
    listens = [(c.http.listen.host, c.http.listen.port) for c in configs]
    for c in configs:
        if c.gossip is not None:
            listens.append((c.gossip.bind.host, c.gossip.bind.port))
        if c.tls.peer_listen is not None:
            listens.append(c.tls.peer_listen)
    for host, _ in listens:
        assert ipaddress.ip_address(host).is_loopback, host
    assert len(set(listens)) == len(listens), "two examples listen on the same address"
    names = [c.node.name for c in configs]
    assert len(set(names)) == len(names), "two examples share a node name"
    for config in configs:
        for backend in config.backends:
            backend_host = urlsplit(backend.url).hostname
            assert backend_host is not None
            assert ipaddress.ip_address(backend_host).is_loopback, backend.url


def test_examples_form_one_cluster() -> None:
    """Every example gossips and is seeded through another example, so the three join up."""
    configs = [load(path) for path in FILES]
    binds = {}
    for config in configs:
        assert config.gossip is not None, f"{config.node.name} does not gossip"
        binds[(config.gossip.bind.host, config.gossip.bind.port)] = config.node.name
    for config in configs:
        assert config.gossip is not None and config.gossip.seeds, config.node.name
        for seed in config.gossip.seeds:
            seeded = binds.get((seed.host, seed.port))
            assert seeded not in (None, config.node.name), f"{config.node.name}: seed {seed}"


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_every_key_is_explained_by_a_comment(path: Path) -> None:
    previous = ""
    undocumented = []
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if "=" in line and not line.startswith(("#", "[")) and not previous.startswith("#"):
            undocumented.append(f"{path.name}:{number}: {line}")
        if line:
            previous = line
    assert not undocumented, "keys without a comment above them:\n" + "\n".join(undocumented)
