"""The example configs shipped in systemd/: valid, one per role, runnable together on loopback."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from hubhop.core.config import ROLES, NodeConfig, parse_config

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


def test_every_role_has_an_example() -> None:
    roles = {load(path).node.role for path in FILES}
    assert roles == set(ROLES)


def test_examples_run_together_on_loopback() -> None:
    configs = [load(path) for path in FILES]
    listens = [(c.http.listen.host, c.http.listen.port) for c in configs]
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
