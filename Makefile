# The two commands of README.md. Each creates the virtualenv and installs what it needs
# first, so they work on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/callable demo

test: $(STAMP)
	$(BIN)/python -m mypy
	scripts/ensure-test-services
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	for bench in bench/*.py; do $(BIN)/python $$bench || exit 1; done
