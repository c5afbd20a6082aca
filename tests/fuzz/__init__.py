"""Fuzzing every parser a peer, a client or an operator's file reaches (issue 8).

`python -m tests.fuzz --inputs 1000000` runs every target round-robin with seeded mutations of
valid seeds and writes a JSON summary; `make fuzz` does that; `test_fuzz_short.py` runs a short
deterministic pass of every target in `make test`. See runner.py.
"""
