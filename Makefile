# ftconfig developer commands. `make quickstart` and `make test` work on a fresh machine with only Python 3.11.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
LSP_VERSION := 2.0.0

.PHONY: setup setup-lsp quickstart test test-fast typecheck lint check bench clean

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
	$(BIN)/ruff format --check .
	$(MAKE) typecheck
	$(BIN)/python -m pytest -q -p no:cacheprovider

# The inner loop: everything but the tests marked slow (training runs, real processes, long property tests).
test-fast:
	$(BIN)/python -m pytest -q -p no:cacheprovider -m "not slow"

# mypy --strict over the package as installed: build/typecheck/ftconfig links ftconfig/*.py, runtime/, tools/,
# generated/ and schema/ the way pyproject's package-dir maps them (mypy cannot follow package-dir itself).
TYPECHECK_DIR := build/typecheck
typecheck:
	rm -rf $(TYPECHECK_DIR)/ftconfig && mkdir -p $(TYPECHECK_DIR)/ftconfig
	ln -s $(CURDIR)/ftconfig/*.py $(TYPECHECK_DIR)/ftconfig/
	for dir in runtime tools generated schema; do ln -s $(CURDIR)/$$dir $(TYPECHECK_DIR)/ftconfig/$$dir; done
	cd $(TYPECHECK_DIR) && $(abspath $(BIN))/mypy --config-file $(CURDIR)/pyproject.toml --cache-dir $(CURDIR)/.mypy_cache -p ftconfig

bench:
	$(BIN)/python -m ftconfig.tools.bench.startup
	$(BIN)/python -m ftconfig.tools.bench.overhead
	$(BIN)/python -m ftconfig.tools.bench.prepare
	$(BIN)/python -m ftconfig.tools.bench.padding
	$(BIN)/python -m ftconfig.tools.bench.new_tokens
	$(BIN)/python -m ftconfig.tools.bench.prepare_dpo

clean:
	rm -rf outputs .pytest_cache build *.egg-info
