"""The [latency] and [wan] sections: naming the hubs to probe, tuning probes, and switching on
the emulated WAN; their faults, and `hubhop check-config` reading the topology file it names."""

from __future__ import annotations

import base64
import shutil
from pathlib import Path

import pytest

from hubhop.core.config import ConfigError, parse_config
from hubhop.io.config_file import check_referenced_files, load_config
from hubhop.io.emulated_wan import open_wan
from hubhop.io.gossip_service import republish_policy
from tests.test_cli_config import assert_no_traceback, hubhop

KEY = base64.b64encode(bytes(range(32))).decode()
REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "topologies" / "hubei.toml"
BASE = '[node]\nname = "wuhan-dc-1"\nrole = "city"\n[http]\nlisten = "127.0.40.1:0"\n'
GOSSIP = f'[gossip]\nbind = "127.0.40.1:7946"\nkeys = ["{KEY}"]\n[tls]\nplaintext = true\n'


def faults(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(BASE + text, "city.toml")
    return caught.value.faults


def test_hubs_and_probe_tuning_parse() -> None:
    config = parse_config(
        BASE + GOSSIP + '[latency]\nhubs = ["hub-wuhu", "hub-zhongwei"]\n'
        "near_interval_s = 1.5\nnearest_k = 4\n",
        "city.toml",
    )
    assert config.latency.hubs == ("hub-wuhu", "hub-zhongwei")
    assert dict(config.latency.tuning) == {"near_interval_s": 1.5, "nearest_k": 4}
    assert config.wan is None  # the emulated WAN is off unless asked for
    assert republish_policy(config).network_min_interval_s == 30.0  # the policy's own


def test_a_lab_may_publish_its_links_sooner() -> None:
    config = parse_config(BASE + GOSSIP + "[latency]\nlinks_republish_s = 2.0\n", "city.toml")
    assert config.latency.links_republish_s == 2.0
    assert republish_policy(config).network_min_interval_s == 2.0


def test_the_wan_section_parses() -> None:
    config = parse_config(
        BASE + GOSSIP + f'[wan]\ntopology = "{SHIPPED}"\nsite = "wuhan-dc-1"\nseed = 7\n',
        "city.toml",
    )
    assert config.wan is not None
    assert (config.wan.topology, config.wan.site, config.wan.seed) == (
        str(SHIPPED),
        "wuhan-dc-1",
        7,
    )


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        ('[latency]\nhubs = ["hub-wuhu"]\n', "city.toml: latency: needs a [gossip] section"),
        (GOSSIP + '[latency]\nhubs = ["Hub Wuhu"]\n', "city.toml: latency.hubs: 'Hub Wuhu' does"),
        (
            GOSSIP + "[latency]\nnearest_k = 2.5\n",
            "city.toml: latency.nearest_k: must be an integer",
        ),
        (
            GOSSIP + "[latency]\nnear_interval_s = 0\n",
            "city.toml: latency.near_interval_s: 0 is out",
        ),
        (GOSSIP + "[latency]\nprobes = 3\n", "city.toml: latency.probes: unknown key"),
        (
            GOSSIP + "[latency]\nlinks_republish_s = 0.1\n",
            "city.toml: latency.links_republish_s: 0.1 is out",
        ),
        (
            GOSSIP + '[wan]\ntopology = "hubei.toml"\n',
            "city.toml: wan.topology: 'hubei.toml' must be",
        ),
        (GOSSIP + "[wan]\nsite = 'x'\n", "city.toml: wan.topology: is required"),
        (GOSSIP + f'[wan]\ntopology = "{SHIPPED}"\nseed = -1\n', "city.toml: wan.seed: -1 is out"),
        (f'[wan]\ntopology = "{SHIPPED}"\n', "city.toml: wan: needs a [gossip] section"),
    ],
)
def test_each_fault_is_named(section: str, expected: str) -> None:
    assert any(f.startswith(expected) for f in faults(section)), faults(section)


def config_file(tmp_path: Path, wan: str) -> Path:
    path = tmp_path / "city.toml"
    path.write_text(BASE + GOSSIP + wan)
    return path


def test_the_site_is_found_by_the_bind_address_and_the_delay_line_opens(tmp_path: Path) -> None:
    config = load_config(config_file(tmp_path, f'[wan]\ntopology = "{SHIPPED}"\n'))
    check_referenced_files(config)
    wan = open_wan(config)
    assert wan is not None and wan.own_site == "wuhan-dc-1"
    # Wuhan to Chengdu: what the model says, never zero, never a whole-millisecond rounding.
    delay = wan.delay_s("127.0.40.24")
    assert delay is not None and 0.003 < delay < 0.007
    wan.close()


@pytest.mark.parametrize(
    ("wan", "expected"),
    [
        ('[wan]\ntopology = "/nonexistent/hubei.toml"\n', "/nonexistent/hubei.toml: cannot read"),
        (f'[wan]\ntopology = "{SHIPPED}"\nsite = "nowhere"\n', "no site is called 'nowhere'"),
        (f'[wan]\ntopology = "{SHIPPED}"\nsite = "shanghai"\n', "site 'shanghai' has host"),
    ],
)
def test_check_config_reads_the_topology_and_names_its_faults(
    tmp_path: Path, wan: str, expected: str
) -> None:
    result = hubhop("check-config", str(config_file(tmp_path, wan)))
    assert result.returncode == 78
    assert expected in result.stderr, result.stderr
    assert_no_traceback(result)


def test_a_node_outside_the_topology_is_refused(tmp_path: Path) -> None:
    shutil.copy(SHIPPED, tmp_path / "hubei.toml")
    shutil.copy(SHIPPED.parent / "places.csv", tmp_path / "places.csv")
    text = (BASE + GOSSIP).replace("127.0.40.1", "127.0.40.250")
    path = tmp_path / "edge.toml"
    path.write_text(text + f'[wan]\ntopology = "{tmp_path / "hubei.toml"}"\n')
    result = hubhop("check-config", str(path))
    assert result.returncode == 78
    assert "no site has host 127.0.40.250" in result.stderr, result.stderr


def test_run_refuses_an_unreadable_keyring_before_starting(tmp_path: Path) -> None:
    gossip = (
        '[gossip]\nbind = "127.0.40.1:7946"\nkeyring_file = "/nonexistent/keys"\n'
        "[tls]\nplaintext = true\n"
    )
    path = tmp_path / "city.toml"
    path.write_text(BASE + gossip)
    result = hubhop("run", "--config", str(path))
    assert result.returncode == 78
    assert "/nonexistent/keys: cannot read keyring" in result.stderr
    assert_no_traceback(result)
