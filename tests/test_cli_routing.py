"""`hubhop route`, `hubhop table` and `hubhop members` against three real daemons.

What an operator at a Wuhan hospital sees when asking its local daemon. Three sites of
topologies/hubei.toml on the emulated WAN (hosts moved to 127.0.21.x, HTTP and gossip each on
its site's host): the hospital (the entry, an edge) fronts a CPU backend serving chat-7b;
wuhan-dc-1, inside the city tier, an Ascend NPU serving ct-triage at price 1; Shiyan, about
3 ms one way (the province tier), an H100 serving ct-triage and seq-align at price 5. Every
backend is a real demo backend process on 127.0.23.N. The commands run as subprocesses, the
way a user types them: the chosen node is named, rejected candidates carry their reasons, a
filter narrows the table, and the exit status says chosen (0), no route (1), bad request (2).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import pytest
from bench.latency.cluster import WanCluster, localise_topology

from tests.procs import Proc, spawn_demo_backend, wait_until

# Links reach peers in 2 s, not the 30 s a production node waits: the cluster routes sooner.
LINKS_REPUBLISH_S = 2.0

ENTRY = "wuhan-hospital"
# site: (chip, models, price); each site's one demo backend
BACKENDS = {
    ENTRY: ("cpu", ("chat-7b",), 0.0),
    "wuhan-dc-1": ("ascend-910b", ("ct-triage",), 1.0),
    "shiyan": ("nvidia-h100", ("ct-triage", "seq-align"), 5.0),
}
TIERS = {ENTRY: "city", "wuhan-dc-1": "city", "shiyan": "province"}
# Three daemons start in a few seconds; routing needs each node's latency, which arrives with the
# links of a record's network republish (at most every 30 s): about 30 s on an idle machine.
CONVERGE_S = 75.0


def backend_config(urls: dict[str, str]) -> dict[str, str]:
    out = {}
    for site, (chip, models, price) in BACKENDS.items():
        listed = ", ".join(f'"{m}"' for m in models)
        out[site] = (
            f'[[backends]]\nname = "{chip}-0"\nurl = "{urls[site]}"\nprotocol = "openai"\n'
            f'models = [{listed}]\nchip = "{chip}"\nslots = 4\nprice = {price}\n'
        )
    return out


@pytest.fixture(scope="module")
def entry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proc]:
    """The hospital's daemon, once its table places every node in its tier."""
    tmp = tmp_path_factory.mktemp("cli-routing")
    backends: list[Proc] = []
    try:
        urls = {}
        for i, (site, (chip, models, _)) in enumerate(BACKENDS.items(), start=1):
            backend = spawn_demo_backend(
                tmp_path_factory.mktemp(f"backend-{site}"), "--host", f"127.0.23.{i}",
                "--chip", chip, "--models", ",".join(models), "--service-ms", "5",
                "--name", f"{chip}-0",
            )  # fmt: skip
            backends.append(backend)
            urls[site] = backend.url
        topology = localise_topology(tmp / "wan", "127.0.21")
        sites = backend_config(urls)
        with WanCluster(
            tmp,
            topology,
            list(BACKENDS),
            site_config=sites.__getitem__,
            links_republish_s=LINKS_REPUBLISH_S,
        ) as cluster:
            cluster.start_all()

            def every_node_in_its_tier() -> bool:
                rows = cluster.get(ENTRY, "/hubhop/v1/table")["rows"]
                tiers = {r["node"]: (r["latency"] or {}).get("tier") for r in rows}
                return tiers == TIERS

            wait_until(every_node_in_its_tier, CONVERGE_S, f"{ENTRY} placing every node")
            yield cluster.procs[ENTRY]
    finally:
        for proc in backends:
            proc.stop()


def hubhop(node: Proc, *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "hubhop", *args, "--url", node.url],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "Traceback" not in result.stderr, result.stderr
    return result


def line_of(output: str, *words: str) -> str:
    """The one line of `output` whose cells start with `words`."""
    found = [line for line in output.splitlines() if line.split()[: len(words)] == list(words)]
    assert len(found) == 1, f"{words} in:\n{output}"
    return found[0]


@pytest.mark.slow
def test_route_explain_names_the_chosen_node_and_why_the_others_lost(entry: Proc) -> None:
    args = ("route", "--model", "ct-triage", "--tier", "city", "--lane", "emergency")
    result = hubhop(entry, *args, "--explain")
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert out.startswith(
        f"{ENTRY}: ct-triage over openai, lane emergency, tier city (1 ms one way), spill next"
    )
    chosen = line_of(out, "chosen", "wuhan-dc-1", "ascend-910b-0")
    assert f"{ENTRY}>wuhan-dc-1" in chosen and " measured " in chosen
    # Shiyan serves the model but is farther than the tier: the figures say by how much.
    far = line_of(out, "rejected", "shiyan", "nvidia-h100-0")
    assert " province " in far and "over tier (" in far and far.endswith(" > 1 ms)")
    assert line_of(out, "rejected", ENTRY, "cpu-0").endswith("model not served")
    assert "-> wuhan-dc-1/ascend-910b-0 at http://127.0.21.1:" in out and "in tier city" in out

    # Without --explain: the choice alone, and a word on what --explain would add.
    brief = hubhop(entry, *args)
    assert brief.returncode == 0
    assert not any(line.startswith("rejected") for line in brief.stdout.splitlines())
    assert "(0 alternate(s), 2 rejected: --explain shows them)" in brief.stdout


@pytest.mark.slow
def test_no_route_exits_1_with_the_reasons_and_spilling_finds_one(entry: Proc) -> None:
    ask = ("route", "--model", "ct-triage", "--chip", "nvidia-h100", "--tier", "city")
    result = hubhop(entry, *ask, "--spill", "none")
    assert result.returncode == 1, result.stdout + result.stderr
    assert line_of(result.stdout, "rejected", "wuhan-dc-1").endswith("chip mismatch")
    assert "over tier (" in line_of(result.stdout, "rejected", "shiyan")
    assert result.stdout.splitlines()[-3] == (
        "no route: nothing feasible within the city tier (1 ms one way), and the request does "
        "not allow spilling over"
    )
    spilled = hubhop(entry, *ask, "--spill", "next")
    assert spilled.returncode == 0
    assert "-> shiyan/nvidia-h100-0" in spilled.stdout
    assert "in tier province, spilled over from city" in spilled.stdout


@pytest.mark.slow
def test_a_bad_hint_exits_2_with_the_daemons_message(entry: Proc) -> None:
    result = hubhop(entry, "route", "--model", "ct-triage", "--budget", "-1")
    assert result.returncode == 2
    assert "400 budget: '-1' must be a price of 0 or more" in result.stderr
    assert result.stdout == ""
    typo = hubhop(entry, "route", "--model", "ct-triage", "--tier", "galaxy")
    assert typo.returncode == 2 and "invalid choice: 'galaxy'" in typo.stderr


@pytest.mark.slow
def test_table_shows_what_the_filter_asks_for(entry: Proc) -> None:
    result = hubhop(entry, "table", "--model", "ct-triage")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split()[:6] == ["NODE", "ROLE", "REGION", "CITY", "STATE", "BACKEND"]
    dc = line_of(result.stdout, "wuhan-dc-1", "city", "hubei", "wuhan", "alive", "ascend-910b-0")
    assert {"ct-triage", "4/4"} <= set(dc.split()) and dc.split()[-2:] == ["city", "measured"]
    assert line_of(result.stdout, "shiyan", "city").split()[-2:] == ["province", "measured"]
    assert not any(line.startswith(ENTRY) for line in lines)
    assert "2 of 3 row(s) matching model=ct-triage" in result.stdout

    near = hubhop(entry, "table", "--tier", "city", "--json")
    assert {r["node"] for r in json.loads(near.stdout)["rows"]} == {ENTRY, "wuhan-dc-1"}
    own = line_of(hubhop(entry, "table", "--node", ENTRY).stdout, ENTRY)
    assert own.split()[-3:] == ["0.000", "city", "local"]

    bad = hubhop(entry, "table", "--chip", "Bad_Chip")
    assert bad.returncode == 2 and "chip: 'Bad_Chip' is not a chip type" in bad.stderr


@pytest.mark.slow
def test_members_lists_every_node_with_its_record(entry: Proc) -> None:
    result = hubhop(entry, "members")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[:8] == ["NAME", "STATE", "INC", "ADDR", "ROLE", "CITY", "VER",
                                         "MODELS"]  # fmt: skip
    assert "ct-triage,seq-align" in line_of(result.stdout, "shiyan", "alive")
    assert "127.0.21.1:7946" in line_of(result.stdout, "wuhan-dc-1", "alive")
    line_of(result.stdout, ENTRY, "alive")
