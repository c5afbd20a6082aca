"""The [gossip] section: what an operator writes to put a node in a cluster, and its faults."""

from __future__ import annotations

import base64

import pytest

from hubhop.core.config import ConfigError, parse_config

KEY = base64.b64encode(bytes(range(32))).decode()
BASE = '[node]\nname = "wuhan-edge-1"\nrole = "edge"\n[http]\nlisten = "127.0.1.1:8080"\n'


def faults(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(BASE + text, "edge.toml")
    return caught.value.faults


def test_a_node_without_the_section_does_not_gossip() -> None:
    assert parse_config(BASE, "edge.toml").gossip is None


def test_a_full_section_parses_with_seeds_keys_and_tuning() -> None:
    config = parse_config(
        BASE
        + '[gossip]\nbind = "127.0.4.1:7946"\nseeds = ["127.0.4.2:7946", "[::1]:7946"]\n'
        + f'keys = ["{KEY}"]\nprobe_interval_s = 0.25\nsuspicion_mult = 4\n'
        + "[tls]\nplaintext = true\n",
        "edge.toml",
    )
    gossip = config.gossip
    assert gossip is not None
    assert str(gossip.bind) == "127.0.4.1:7946"
    assert [str(s) for s in gossip.seeds] == ["127.0.4.2:7946", "[::1]:7946"]
    assert gossip.keys == (KEY,)
    assert dict(gossip.tuning) == {"probe_interval_s": 0.25, "suspicion_mult": 4.0}


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        ('bind = "127.0.4.1:7946"\n',
         "edge.toml: gossip.keys: give exactly one of keys or keyring_file: gossip is always "
         "encrypted"),
        (f'bind = "127.0.4.1:7946"\nkeys = ["{KEY}"]\nkeyring_file = "/etc/hubhop/keys"\n',
         "edge.toml: gossip.keys: give exactly one of keys or keyring_file: gossip is always "
         "encrypted"),
        ('bind = "127.0.4.1:7946"\nkeys = ["AAAA"]\n',
         "edge.toml: gossip.keys: a key decodes to 3 bytes; AES needs 16, 24 or 32"),
        ('bind = "127.0.4.1:7946"\nkeys = ["abc"]\n',
         "edge.toml: gossip.keys: a key is not valid base64"),
        (f'bind = "127.0.4.1:0"\nkeys = ["{KEY}"]\n',
         "edge.toml: gossip.bind: needs a fixed port: peers and seeds reach this node there"),
        (f'bind = "127.0.4.1:7946"\nkeys = ["{KEY}"]\nseeds = ["127.0.4.2"]\n',
         "edge.toml: gossip.seeds[0]: '127.0.4.2' must be IP:PORT (e.g. 127.0.1.1:8080)"),
        (f'bind = "127.0.4.1:7946"\nkeys = ["{KEY}"]\nprobe_interval_s = 0\n',
         "edge.toml: gossip.probe_interval_s: 0 is out of range [0.05, 60.0]"),
        (f'bind = "127.0.4.1:7946"\nkeys = ["{KEY}"]\nprobe_intervl_s = 1\n',
         "edge.toml: gossip.probe_intervl_s: unknown key"),
        (f'bind = "127.0.4.1:7946"\nkeys = ["{KEY}"]\nkeyring_file = "keys.txt"\n',
         "edge.toml: gossip.keyring_file: 'keys.txt' must be an absolute path"),
    ],
)  # fmt: skip
def test_each_gossip_fault_is_named(section: str, expected: str) -> None:
    assert expected in faults("[gossip]\n" + section)


GOSSIP = f'[gossip]\nbind = "127.0.4.1:7946"\nkeys = ["{KEY}"]\n[tls]\nplaintext = true\n'
WILDCARD = '[node]\nname = "wuhan-edge-1"\nrole = "edge"\n[http]\nlisten = "0.0.0.0:8080"\n'


def test_a_wildcard_listen_must_say_the_address_peers_reach_it_at() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(WILDCARD + GOSSIP, "edge.toml")
    assert any("http.advertise" in f and "wildcard" in f for f in caught.value.faults)
    text = WILDCARD.replace('8080"\n', '8080"\nadvertise = "10.20.0.7"\n') + GOSSIP
    http = parse_config(text, "edge.toml").http
    assert http.peer_host == "10.20.0.7"
    # Without gossip a wildcard needs nothing: no peer ever calls this node.
    assert parse_config(WILDCARD, "edge.toml").http.peer_host is None


@pytest.mark.parametrize("advertise", ["node-7.example", "0.0.0.0", "10.20.0"])
def test_an_advertised_address_must_be_a_reachable_ip(advertise: str) -> None:
    text = WILDCARD.replace('8080"\n', f'8080"\nadvertise = "{advertise}"\n') + GOSSIP
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "edge.toml")
    assert any(f.startswith("edge.toml: http.advertise:") for f in caught.value.faults)
