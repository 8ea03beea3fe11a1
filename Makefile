# polybot: `make run` (offline demo) and `make test` each set up .venv first if needed.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# `make run CONFIG=config/sports-demo.toml` runs another demo (README: "Sports and odds")
CONFIG ?= config/demo.toml

.PHONY: install run test test-all bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,live]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/polybot run --config $(CONFIG)

test: $(STAMP)
	$(BIN)/python -m pytest

test-all: $(STAMP)
	$(BIN)/python -m pytest -m ''

bench: $(STAMP)
	$(BIN)/polybot bench

clean:
	rm -rf $(VENV) var .pytest_cache build *.egg-info
