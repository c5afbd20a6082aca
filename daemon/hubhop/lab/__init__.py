"""`hubhop.lab`: an emulated computing-power network on one machine, as real processes.

Shared by `hubhop demo`, the benchmarks (`bench/`) and the multi-process tests, so all of them
start, configure and stop the same network the same way. An I/O-side package (processes,
sockets, files): tests/test_layering.py keeps the daemon's own layers from reaching it.

One concept per file:
- `processes`      start a process, wait (bounded) for its ready line, stop it by its PID
- `cluster`        a daemon per site of a topology, the emulated WAN on (`WanCluster`)
- `profiles`       which demo backends each site fronts: chips, models, slots, prices (pure)
- `network_slice`  which sites of a topology run: entry points, near and far capacity (pure)
- `backends`       the demo backend processes of a network's sites (`BackendFleet`)
"""
