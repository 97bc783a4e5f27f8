# ftconfig developer commands. `make quickstart` and `make test` work on a fresh machine with only Python 3.11.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
LSP_VERSION := 2.0.0

.PHONY: setup setup-lsp quickstart test lint check bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# torch first and pinned: an unpinned torch would pull a multi-GB CUDA build.
setup: $(BIN)/python
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -c constraints.txt -e '.[train,dev]'

setup-lsp:
	npm install --silent --no-audit --no-fund --prefix .lsp yaml-language-server@$(LSP_VERSION)

quickstart: setup
	$(BIN)/ftschema validate examples/quickstart.yaml
	$(BIN)/ftrun examples/quickstart.yaml --overwrite

check:
	$(BIN)/ftschema check

lint:
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: setup setup-lsp
	$(BIN)/ftschema check
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -p no:cacheprovider

bench:
	$(BIN)/python -m ftconfig.tools.bench.startup
	$(BIN)/python -m ftconfig.tools.bench.overhead
	$(BIN)/python -m ftconfig.tools.bench.prepare
	$(BIN)/python -m ftconfig.tools.bench.padding
	$(BIN)/python -m ftconfig.tools.bench.prepare_dpo

clean:
	rm -rf outputs .pytest_cache build *.egg-info
