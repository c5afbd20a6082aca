"""The shipped systemd unit, `systemd/hubhop@.service`: what systemd says of it, and its contract
with the daemon and the example configs.

`systemd-analyze verify` and `security --offline=true` run where systemd-analyze exists; the
rest reads the unit's text. verify also checks that each Exec*= binary exists, so it reads a
copy in which only the installed path of `hubhop` is replaced by this environment's; security
reads the shipped file itself.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

from hubhop.cli import EX_CONFIG
from hubhop.core.config import LifecycleSettings, NodeConfig, parse_config

SYSTEMD = Path(__file__).resolve().parent.parent / "systemd"
UNIT = SYSTEMD / "hubhop@.service"
EXAMPLES = sorted(SYSTEMD.glob("*.toml"))
# Where the unit expects the CLI (an operator links it to the venv in /opt/hubhop).
INSTALLED_HUBHOP = "/usr/local/bin/hubhop"
# The bar: "OK" in systemd-analyze's own scale, where 0 is fully locked down.
MAX_EXPOSURE = 1.5
# systemd-analyze answers in a tenth of a second; 30 s only bounds a hung process.
ANALYZE_TIMEOUT_S = 30

SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(
    SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed on this machine"
)


def directives(text: str) -> dict[str, list[str]]:
    """`Section.Key` -> its values in order (a key may repeat), comments and blanks skipped."""
    found: dict[str, list[str]] = defaultdict(list)
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            continue
        key, sep, value = line.partition("=")
        assert sep, f"not a directive: {raw!r}"
        found[f"{section}.{key.strip()}"].append(value.strip())
    return dict(found)


UNIT_DIRECTIVES = directives(UNIT.read_text(encoding="utf-8"))


def one(key: str) -> str:
    values = UNIT_DIRECTIVES.get(key, [])
    assert len(values) == 1, f"{key}: expected one value, the unit has {values}"
    return values[0]


def for_instance(value: str, instance: str) -> str:
    return value.replace("%i", instance)


def seconds(value: str) -> float:
    match = re.fullmatch(r"(\d+)(s|min)?", value)
    assert match, f"a time span this test does not read: {value!r}"
    return int(match.group(1)) * (60 if match.group(2) == "min" else 1)


def example(path: Path) -> NodeConfig:
    return parse_config(path.read_text(encoding="utf-8"), str(path))


def analyze(*args: str) -> subprocess.CompletedProcess[str]:
    assert SYSTEMD_ANALYZE is not None
    return subprocess.run(
        [SYSTEMD_ANALYZE, *args], capture_output=True, text=True, timeout=ANALYZE_TIMEOUT_S
    )


@needs_analyze
def test_systemd_analyze_verify_is_clean(tmp_path: Path) -> None:
    text = UNIT.read_text(encoding="utf-8")
    assert INSTALLED_HUBHOP in one("Service.ExecStart")
    hubhop = Path(sys.executable).parent / "hubhop"
    assert hubhop.is_file(), f"no hubhop script beside {sys.executable}"
    # An instance, as an operator enables it: a template alone is verified as "hubhop@i".
    instance = tmp_path / "hubhop@edge.service"
    instance.write_text(text.replace(INSTALLED_HUBHOP, str(hubhop)), encoding="utf-8")
    result = analyze("verify", str(instance))
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr


@needs_analyze
def test_systemd_analyze_security_rates_the_unit_ok() -> None:
    result = analyze("security", "--offline=true", "--no-pager", str(UNIT))
    match = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?) (\w+)", result.stdout)
    assert match, f"no overall exposure line in:\n{result.stdout}\n{result.stderr}"
    exposure, verdict = float(match.group(1)), match.group(2)
    failing = [line for line in result.stdout.splitlines() if line.startswith("✗")]
    assert exposure <= MAX_EXPOSURE, f"exposure {exposure} {verdict}:\n" + "\n".join(failing)


def test_unit_speaks_notify_and_reloads_with_sighup() -> None:
    # Type=notify works on every systemd; hubhop sends READY=1, RELOADING=1 and STOPPING=1.
    assert one("Service.Type") == "notify"
    reload = UNIT_DIRECTIVES["Service.ExecReload"]
    assert reload[-1] == "/bin/kill -HUP $MAINPID"
    # The edited file is checked before the signal, so a broken one fails `systemctl reload`.
    assert reload[0] == f"{INSTALLED_HUBHOP} check-config /etc/hubhop/%i.toml"
    assert float(one("Service.WatchdogSec")) > 0


def test_start_checks_the_file_it_runs() -> None:
    pre = one("Service.ExecStartPre").split()
    start = one("Service.ExecStart").split()
    assert pre[:2] == [INSTALLED_HUBHOP, "check-config"] and len(pre) == 3
    assert start[:3] == [INSTALLED_HUBHOP, "run", "--config"] and len(start) == 4
    assert pre[2] == start[3] == "/etc/hubhop/%i.toml"


def test_a_broken_config_is_not_restarted_in_a_loop() -> None:
    assert one("Service.Restart") == "on-failure"
    assert str(EX_CONFIG) in one("Service.RestartPreventExitStatus").split()


def test_stop_timeout_outlasts_every_drain_grace() -> None:
    stop = seconds(one("Service.TimeoutStopSec"))
    graces = [example(path).lifecycle.drain_grace_s for path in EXAMPLES]
    assert stop > max([*graces, LifecycleSettings().drain_grace_s])


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_reads_its_secrets_from_the_units_credentials(path: Path) -> None:
    config = example(path)
    # hubhop@<stem>.service reads /etc/hubhop/<stem>.toml: the file's name is the instance.
    credentials = f"/run/credentials/hubhop@{path.stem}.service/"
    loaded = {value.partition(":")[0] for value in UNIT_DIRECTIVES["Service.LoadCredential"]}
    assert config.gossip is not None and config.tls.mutual_tls
    assert not config.gossip.keys, "keys inline in a config file are not a secret kept"
    named = [config.gossip.keyring_file, config.tls.ca_file, config.tls.cert_file]
    named.append(config.tls.key_file)
    for file in named:
        assert file.startswith(credentials), file
        assert file.removeprefix(credentials) in loaded, f"{file}: no LoadCredential= for it"
    # Every credential the unit loads is one the daemon reads, so none must exist for nothing.
    assert {file.removeprefix(credentials) for file in named} == loaded


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_writes_only_where_the_unit_lets_it(path: Path) -> None:
    config = example(path)
    instance = path.stem
    cache = "/var/cache/" + for_instance(one("Service.CacheDirectory"), instance)
    assert config.kernels.cache_dir == cache
    # The fallback for a config without [kernels]: numba must find a writable cache somewhere.
    assert f"NUMBA_CACHE_DIR={cache}" == for_instance(one("Service.Environment"), instance)
    state = "/var/lib/" + for_instance(one("Service.StateDirectory"), instance)
    assert config.gossip is not None
    assert Path(config.gossip.keyring_state_file).parent == Path(state)
    runtime = "/run/" + for_instance(one("Service.RuntimeDirectory"), instance)
    assert config.admin.socket is not None
    assert Path(config.admin.socket).parent == Path(runtime)


def test_unit_runs_unprivileged_in_a_read_only_system() -> None:
    assert one("Service.DynamicUser") == "yes"
    assert one("Service.ProtectSystem") == "strict"
    assert one("Service.CapabilityBoundingSet") == ""
    assert one("Service.NoNewPrivileges") == "yes"
    # The operators' group reaches the admin socket; others reach nothing the service creates.
    assert one("Service.UMask") == "0007"
    assert one("Service.RuntimeDirectoryMode") == "0750"


def test_unit_leaves_the_jit_its_executable_memory() -> None:
    # numba refuses to import when it cannot map executable memory, even with every kernel
    # cached: MemoryDenyWriteExecute=yes would stop the daemon before it says READY=1.
    assert UNIT_DIRECTIVES.get("Service.MemoryDenyWriteExecute", ["no"]) == ["no"]
