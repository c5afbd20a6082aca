"""What `hubhop route`, `table`, `members`, `peers` and `rtt` print, from made-up daemon answers,
and the exit status each situation gives (against an in-process daemon that does not gossip).

The renderers are pure (`hubhop.cli_tables`): views in, lines out. The commands only choose the
exit status: 0 answered, 1 no route or unknown, 2 a request the daemon refused as bad (its
message printed), 69 no daemon to ask.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from hubhop import cli_tables
from hubhop.cli import EX_UNAVAILABLE, main
from hubhop.core.config import parse_config
from tests.conftest import start_node


def candidate(node: str, backend: str, one_way: float | None, *reasons: str, **more: Any) -> dict:
    path = more.pop("path", ["edge-a", node] if node != "edge-a" else ["edge-a"])
    split = None if one_way is None else {"network": 2 * one_way, "queue": 1.5, "service": 40.0}
    if split is not None:
        split["total"] = sum(split.values())
    return {
        "node": node,
        "backend": backend,
        "path": path if one_way is not None else [],
        "relayed": len(path) > 2,
        "one_way_ms": one_way,
        "estimated": more.pop("estimated", False),
        "expected_ms": split or {"network": None, "queue": None, "service": 40.0, "total": None},
        **({"reasons": list(reasons)} if reasons else {}),
        **more,
    }


def decision(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "node": "edge-a",
        "model": "ct-triage",
        "protocol": "openai",
        "lane": "emergency",
        "tier_asked": "city",
        "bound_ms": 1.0,
        "spill": "none",
        "chosen": candidate("city-b", "npu-0", 0.25, url="http://127.0.21.2:8080"),
        "tier": "city",
        "spilled": False,
        "alternates": [candidate("city-c", "npu-0", 0.4, estimated=True)],
        "rejected": [
            candidate("edge-a", "cpu-0", 0.0, "model not served"),
            candidate("shiyan-2", "npu-0", 3.4, "over tier"),
            candidate("lost-9", "npu-0", None, "over tier", "unreachable"),
        ],
    }
    body.update(changes)
    return body


def cells(lines: list[str], first: str, second: str) -> list[str]:
    [line] = [ln for ln in lines if ln.split()[:2] == [first, second]]
    return line.split("  ")


def test_aligned_pads_every_column_to_its_widest_cell() -> None:
    assert cli_tables.aligned([("A", "BB", "C"), ("long", "x", "")]) == ["A     BB  C", "long  x"]


def test_route_explain_shows_the_choice_the_alternates_and_every_rejection() -> None:
    lines = cli_tables.route_lines(decision(), explain=True)
    assert lines[0] == (
        "edge-a: ct-triage over openai, lane emergency, tier city (1 ms one way), spill none"
    )
    assert lines[1].split() == ["NODE", "BACKEND", "PATH", "ONE_WAY", "TIER", "SOURCE",
                                "NETWORK", "QUEUE", "SERVICE", "TOTAL", "REASONS"]  # fmt: skip
    assert lines[2].split() == ["chosen", "city-b", "npu-0", "edge-a>city-b", "0.250", "city",
                                "measured", "0.500", "1.500", "40.000", "42.000"]  # fmt: skip
    assert "estimated" in lines[3] and lines[3].startswith("alternate  city-c")
    assert "local" in lines[4] and lines[4].endswith("model not served")
    assert lines[5].endswith("over tier (3.400 > 1 ms)") and " province " in lines[5]
    # An unknown latency is over every bound: "unreachable" alone says why.
    assert lines[6].startswith("rejected   lost-9") and lines[6].endswith("  unreachable")
    assert lines[7] == "-> city-b/npu-0 at http://127.0.21.2:8080, in tier city"


def test_route_without_explain_shows_the_choice_and_what_explain_adds() -> None:
    lines = cli_tables.route_lines(decision(), explain=False)
    assert [ln.split()[0] for ln in lines[2:4]] == ["chosen", "->"]
    assert lines[4] == "(1 alternate(s), 3 rejected: --explain shows them)"


def test_a_spilled_route_says_from_which_tier() -> None:
    lines = cli_tables.route_lines(decision(tier="province", spilled=True, spill="next"), False)
    assert "in tier province, spilled over from city" in lines[3]


def test_no_route_shows_the_rejections_even_without_explain() -> None:
    reason = "nothing feasible within the city tier (1 ms one way), and the request does not allow"
    lines = cli_tables.route_lines(decision(chosen=None, tier=None, reason=reason), False)
    assert [ln.split()[0] for ln in lines[2:5]] == ["rejected"] * 3
    assert lines[5] == f"no route: {reason}"


def test_an_unbounded_ask_reads_no_bound() -> None:
    lines = cli_tables.route_lines(decision(bound_ms=None, tier_asked="any"), False)
    assert "tier any (no bound)" in lines[0]


TABLE_VIEW: dict[str, Any] = {
    "node": "edge-a",
    "gossip": True,
    "filters": {"model": "ct-triage", "tier": "province"},
    "rows_total": 5,
    "rows": [
        {
            "node": "city-b", "role": "city", "region": "hubei", "city": "wuhan",
            "state": "suspect", "backend": "npu-0", "protocols": ["kserve_v2", "openai"],
            "models": ["chat-7b", "ct-triage"], "chip": "ascend-910b", "slots": 8,
            "emergency_reserve": 1, "busy": 2.5, "free": 5.5, "load": 0.312,
            "queue": {"emergency": 0.0, "standard": 3.0, "batch": 12.0}, "service_ms": 41.25,
            "price": 1.5, "green_share": 0.35, "alive": True,
            "latency": {"one_way_ms": 2.5, "tier": "province", "source": "estimated",
                        "path": ["edge-a", "city-b"]},
        },
        {
            "node": "far-9", "role": "", "region": "", "city": "", "state": "alive",
            "backend": "cpu-0", "protocols": ["openai"], "models": ["ct-triage"], "chip": "cpu",
            "slots": 1, "emergency_reserve": 0, "busy": 0.0, "free": 1.0, "load": 0.0,
            "queue": {"emergency": 0.0, "standard": 0.0, "batch": 0.0}, "service_ms": None,
            "price": 0.0, "green_share": 0.0, "alive": True, "latency": None,
        },
    ],
}  # fmt: skip


def test_table_lines_show_each_row_and_what_was_filtered() -> None:
    lines = cli_tables.table_lines(TABLE_VIEW)
    assert lines[0].split() == ["NODE", "ROLE", "REGION", "CITY", "STATE", "BACKEND",
                                "PROTOCOLS", "MODELS", "CHIP", "FREE", "QUEUE", "SVC_MS",
                                "PRICE", "GREEN", "ONE_WAY", "TIER", "SOURCE"]  # fmt: skip
    assert lines[1].split() == ["city-b", "city", "hubei", "wuhan", "suspect", "npu-0",
                                "kserve_v2,openai", "chat-7b,ct-triage", "ascend-910b", "5.5/8",
                                "0/3/12", "41.2", "1.5", "35%", "2.500", "province",
                                "estimated"]  # fmt: skip
    # Unknown figures are empty cells: the columns stay aligned.
    assert lines[2].split() == ["far-9", "alive", "cpu-0", "openai", "ct-triage", "cpu", "1/1",
                                "0/0/0", "0", "0%"]  # fmt: skip
    assert len(lines[2]) < len(lines[1])
    assert lines[3] == "2 of 5 row(s) matching model=ct-triage, tier=province"


def test_a_table_without_gossip_says_so() -> None:
    view = {**TABLE_VIEW, "gossip": False, "filters": {}, "rows": [], "rows_total": 1}
    lines = cli_tables.table_lines(view)
    assert lines[1] == "0 of 1 row(s); edge-a does not gossip: its own only"


def test_members_peers_and_rtt_render_as_before() -> None:
    members = {"members": [{"name": "solo", "state": "alive", "gossip": False}]}
    assert cli_tables.members_lines(members)[1].split() == ["solo", "alive"]
    assert cli_tables.peers_lines({"node": "solo", "gossip": False}) == [
        "solo does not gossip: no peers to probe"
    ]
    unknown = {"from": "a", "to": "b", "estimate": None, "reason": "no coordinates"}
    assert cli_tables.rtt_line(unknown) == "a -> b: unknown (no coordinates)"


# --------------------------------------------------------------------------------------------
# Exit statuses


def test_a_daemon_that_cannot_be_reached_is_69(capsys: pytest.CaptureFixture[str]) -> None:
    # Nothing listens on the discard port of this loopback address: refused at once.
    for command in (["route", "--model", "m"], ["table"], ["members"]):
        assert main([*command, "--url", "http://127.0.21.99:9"]) == EX_UNAVAILABLE
        assert "cannot reach the daemon at http://127.0.21.99:9" in capsys.readouterr().err


def test_neither_config_nor_url_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["table"]) == 2
    assert "hubhop table: give the node's --config FILE or the daemon's --url URL" in (
        capsys.readouterr().err
    )


def test_a_tier_and_a_max_latency_exclude_each_other() -> None:
    with pytest.raises(SystemExit) as exited:
        main(["route", "--model", "m", "--tier", "city", "--max-latency-ms", "3", "--url", "x"])
    assert exited.value.code == 2


SOLO = parse_config(
    '[node]\nname = "solo"\nrole = "edge"\nregion = "hubei"\ncity = "wuhan"\n'
    '[http]\nlisten = "127.0.21.21:0"\n'
    '[[backends]]\nname = "cpu-0"\nurl = "http://127.0.23.21:9"\n'
    'protocol = "openai"\nmodels = ["chat-7b"]\nslots = 2\n',
    "solo.toml",
)


async def test_commands_against_a_daemon_that_does_not_gossip(
    capsys: pytest.CaptureFixture[str],
) -> None:
    node = await start_node(SOLO)
    try:
        # The CLI blocks on its request: it runs in a thread while this loop serves it.
        async def run(*args: str) -> tuple[int, str, str]:
            status = await asyncio.to_thread(main, [*args, "--url", node.url])
            out, err = capsys.readouterr()
            return status, out, err

        status, out, err = await run("route", "--model", "chat-7b")
        assert status == 1
        assert err == (
            f"{node.url}/hubhop/v1/route: 503 this node does not gossip: it knows no other node\n"
        )
        status, out, _ = await run("table", "--model", "chat-7b")
        assert status == 0
        assert out.splitlines()[1].split()[:6] == ["solo", "edge", "hubei", "wuhan", "alive",
                                                   "cpu-0"]  # fmt: skip
        assert "1 of 1 row(s) matching model=chat-7b; solo does not gossip" in out
        status, out, _ = await run("members")
        assert status == 0 and out.splitlines()[1].split() == ["solo", "alive"]
        status, out, _ = await run("route", "--model", "chat-7b", "--json")
        assert status == 1 and out == ""
    finally:
        await node.drain_and_stop()


def test_a_backend_out_of_rotation_says_so_in_its_state() -> None:
    row = TABLE_VIEW["rows"][1]
    ejected = {**row, "rotation": {"state": "ejected", "slots": 0, "back_in_s": 29.6}}
    ramping = {**row, "slots": 10, "rotation": {"state": "slow-start", "slots": 3}}
    back = {**row, "rotation": {"state": "in", "slots": 1}}
    view = {**TABLE_VIEW, "rows": [ejected, ramping, back]}
    states = [
        line.split("cpu-0")[0].split(None, 1)[1].strip()
        for line in cli_tables.table_lines(view)[1:4]
    ]
    assert states == [
        "alive (ejected, back in 30 s)",
        "alive (slow start, 3/10 slots)",
        "alive",
    ]
