"""The sans-IO core: pure, synchronous, deterministic.

Nothing in this package opens a socket, reads a clock or starts a task. Time (`now`) and
randomness (`rng`) are arguments, so the same code runs in the daemon, in the simulator and in
tests without sleeps.
"""
