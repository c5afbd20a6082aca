"""Starting hubhop processes for tests: real processes on loopback, stopped by their PID.

The launching itself is the package's (`hubhop.lab.processes`): one implementation of "start,
wait for the ready line within a bound, stop by PID" for the demo, the benchmarks and the tests.
This module adds what only tests need.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from hubhop.lab.processes import (
    Proc,
    reset_peak_rss,
    run_hubhop_node,
    start_demo_backend,
    vm_kib,
)

__all__ = [
    "Proc",
    "node_config",
    "reset_peak_rss",
    "spawn_demo_backend",
    "spawn_node",
    "spawn_nodes",
    "vm_kib",
    "wait_until",
]


def spawn_demo_backend(tmp_path: Path, *extra: str) -> Proc:
    return start_demo_backend(tmp_path, *extra)


def spawn_node(config_path: Path, env: dict[str, str] | None = None) -> Proc:
    return run_hubhop_node(config_path, env)


@contextmanager
def spawn_nodes(
    tmp_path: Path, nodes: Iterable[tuple[str, tuple[str, ...], Callable[[str], str]]]
) -> Iterator[dict[str, Proc]]:
    """For each (name, demo backend arguments, config text given the backend's URL), in order:
    a demo backend and a daemon fronting it, each in its own folder. Yields the daemons by
    name and their backends as `NAME-backend`; stops them all, by PID, on the way out."""
    procs: list[Proc] = []
    found: dict[str, Proc] = {}
    try:
        for name, backend_args, config_text in nodes:
            workdir = tmp_path / name
            workdir.mkdir()
            backend = spawn_demo_backend(workdir, *backend_args)
            procs.append(backend)
            found[f"{name}-backend"] = backend
            path = workdir / f"{name}.toml"
            path.write_text(config_text(backend.url))
            found[name] = spawn_node(path)
            procs.append(found[name])
        yield found
    finally:
        for proc in reversed(procs):
            proc.stop()


def node_config(
    backend_url: str,
    *,
    address: str = "127.0.1.1",
    models: tuple[str, ...] = ("demo-llm", "ct-triage"),
    extra_http: str = "",
    drain_grace_s: float = 10.0,
) -> str:
    """A valid single-node config text fronting one demo backend for both protocols."""
    model_list = ", ".join(f'"{m}"' for m in models)
    return (
        '[node]\nname = "test-edge"\nrole = "edge"\nregion = "hubei"\ncity = "wuhan"\n'
        f'[http]\nlisten = "{address}:0"\n{extra_http}'
        f"[lifecycle]\ndrain_grace_s = {drain_grace_s}\n"
        f'[[backends]]\nname = "demo"\nurl = "{backend_url}"\n'
        f'protocol = ["openai", "kserve_v2"]\nmodels = [{model_list}]\nslots = 4\n'
    )


def wait_until(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Poll `predicate` until it holds; fail with `what` after `timeout_s`.

    Only for multi-process tests, where the thing awaited happens in other processes; everything
    in-process is driven by events or a fake clock instead.
    """
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s} s: {what}")
        time.sleep(0.2)
