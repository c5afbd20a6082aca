"""hubhop benchmarks: measured runs on loopback, beside the tools users would pick instead.

Run them with `python -m bench NAME [options]` (or `make bench ARGS="NAME"`); `python -m bench`
alone runs every one (`--quick`: their short passes) and then rewrites the README tables from
their results (`readme_tables.py`). Each writes a JSON file and a PNG plot under
`bench/results/NAME/` and prints a table. See bench/README.md for what each one answers.

Rules every benchmark here keeps:
- Traffic goes only to 127.0.0.0/8; every load is bounded in count and in time.
- Processes are started by the benchmark and stopped by their PID, never by name.
- Nothing here imports from tests/: processes are started and stopped by `hubhop.lab` (under
  the short name `bench._launch`), which `hubhop demo` and the tests share.
"""
