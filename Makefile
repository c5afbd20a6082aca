# hubhop: every set-up step lives here, so a fresh clone needs only `make demo` or `make test`.
# The first run creates .venv and installs the pinned set from constraints.txt.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
ARGS   ?=
# `make bench QUICK=1`: every benchmark's short pass (its --quick) instead of the full run.
QUICK  ?=
# Long multi-process scenarios carry the `slow` marker; `make test` (and CI) runs them all.
PYTEST_ARGS ?=

.PHONY: demo test test-nojit test-quick fuzz lint typecheck protos bench bench-tables bench-deps lock clean

$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "hubhop needs Python 3.11 or newer; set PYTHON=python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/hubhop demo $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check daemon native tests bench proto
	$(BIN)/ruff format --check daemon native tests bench proto

# The gRPC stubs (hubhop.api) again from proto/*/*.proto; they are checked in, and a test fails
# when they differ from what the .proto files generate.
protos: $(STAMP)
	$(BIN)/python proto/generate.py

typecheck: $(STAMP)
	$(BIN)/mypy

test: lint typecheck
	$(BIN)/pytest $(PYTEST_ARGS)
	$(MAKE) --no-print-directory test-nojit

# The kernels' tests again with numba's JIT off: the kernels then run as plain Python, so the
# same property tests check the Python semantics the JIT compiles from.
test-nojit: $(STAMP)
	NUMBA_DISABLE_JIT=1 $(BIN)/pytest -q tests/native $(PYTEST_ARGS)

test-quick: $(STAMP)
	$(BIN)/pytest -m "not slow" $(PYTEST_ARGS)

# A million fuzzed inputs over every parser a peer, client or config reaches (at most 20 min);
# the summary (inputs/s per target, crashes with their inputs, RSS) goes to bench/results/fuzz.json.
fuzz: $(STAMP)
	$(BIN)/python -m tests.fuzz --inputs 1000000 --seconds 1200 --json bench/results/fuzz.json $(ARGS)

# Every benchmark (or the one ARGS names), then the README tables from the results; see
# bench/README.md. `make bench QUICK=1` for the short pass, `make bench ARGS="proxy --no-haproxy"`.
bench: $(STAMP) bench-deps
	$(BIN)/python -m bench $(if $(QUICK),--quick) $(ARGS)

# Only rewrite the README tables from the last results (bench/results/, else docs/bench/).
bench-tables: $(STAMP)
	$(BIN)/python -m bench tables

# Side-by-side tools from Debian: HAProxy (proxy) and Serf (gossip). Without apt (or without
# root) the variants that need them are skipped by the benchmark with a printed note.
bench-deps:
	@for tool in haproxy serf; do \
		if command -v $$tool >/dev/null; then :; \
		elif command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
			apt-get update -qq && apt-get install -y -qq $$tool >/dev/null; \
		else echo "$$tool is not installed and apt-get is not usable here: its variant will be skipped"; fi; \
	done

# Re-pin every dependency to what is installed now (run after changing pyproject.toml).
lock: $(STAMP)
	$(BIN)/pip freeze --exclude-editable | grep -v '^hubhop' > constraints.txt

clean:
	rm -rf $(VENV) build *.egg-info daemon/*.egg-info native/*.egg-info .pytest_cache .mypy_cache .ruff_cache
