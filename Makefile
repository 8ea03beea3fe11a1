# polybot: `make run` (offline demo) and `make test` each set up .venv first if needed.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# `make run CONFIG=config/sports-demo.toml` runs another demo (README: "Sports and odds")
CONFIG ?= config/demo.toml

.PHONY: install browser run test test-all bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,live]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/polybot run --config $(CONFIG)

# the dashboard test drives Debian's chromium; installed here when missing (as root, with apt-get),
# otherwise that one test is skipped with its reason
browser:
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing chromium and chromium-driver for the dashboard test"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; \
	else echo "note: no /usr/bin/chromium: the dashboard's browser test will be skipped"; fi

test: $(STAMP) browser
	$(BIN)/python -m pytest

test-all: $(STAMP) browser
	$(BIN)/python -m pytest -m ''

bench: $(STAMP)
	$(BIN)/polybot bench

clean:
	rm -rf $(VENV) var .pytest_cache build *.egg-info
