# The two commands: `make demo` and `make test`. Both create .venv on a fresh machine.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

export TF_CPP_MIN_LOG_LEVEL ?= 2

# The browser tests drive Debian's chromium; `make test` installs it when it is missing.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test check bench clean browser postgresql

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/seglab demo

browser:
	@command -v chromium >/dev/null || { echo "Installing chromium for the browser tests (Debian package)"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium >/dev/null; }

# `seglab tune`'s PostgreSQL test starts a server of Debian's package; where it cannot be
# installed the test skips and says why, so a failed install does not stop the suite.
postgresql:
	@ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || { echo "Installing PostgreSQL for the seglab tune test (Debian package)"; \
	  { $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq postgresql >/dev/null; } \
	  || echo "PostgreSQL could not be installed: its test will skip"; }

# Every test: fast, slow (real training runs, the browser) and those reading ../shared.
test: $(STAMP) browser postgresql
	SEGLAB_REQUIRE_BROWSER=1 $(BIN)/python -m pytest -m "" -n 2 --dist worksteal

# The fast tests only, for feedback while working (80 s on 2 cores; plain `pytest`, serial, 100 s).
check: $(STAMP)
	$(BIN)/python -m pytest -n 2

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_pipeline.py

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache
