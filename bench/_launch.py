"""Starting the processes a benchmark measures, and stopping them by their PID.

The launching itself lives in the package (`hubhop.lab.processes`), shared with `hubhop demo`
and the tests; this module keeps the benchmarks' short name for it.
"""

from __future__ import annotations

from hubhop.lab.processes import (
    READY_TIMEOUT_S,
    STOP_TIMEOUT_S,
    LaunchError,
    Proc,
    cpu_seconds,
    free_port,
    hubhop_argv,
    popen,
    reset_peak_rss,
    run_hubhop_node,
    start_demo_backend,
    start_hubhop_node,
    start_listening_process,
    vm_kib,
    wait_ready_line,
)

__all__ = [
    "READY_TIMEOUT_S",
    "STOP_TIMEOUT_S",
    "LaunchError",
    "Proc",
    "cpu_seconds",
    "free_port",
    "hubhop_argv",
    "popen",
    "reset_peak_rss",
    "run_hubhop_node",
    "start_demo_backend",
    "start_hubhop_node",
    "start_listening_process",
    "vm_kib",
    "wait_ready_line",
]
