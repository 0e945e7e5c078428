# The two commands of README.md. Each creates the virtualenv and installs what it needs
# first, so they work on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench screenshots

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/callable demo

# --dist worksteal: a worker that runs out of tests takes some of the other's, so the long
# end-to-end and bench tests don't leave one worker running alone at the end.
test: $(STAMP)
	$(BIN)/python -m mypy
	scripts/ensure-test-services
	$(BIN)/python -m pytest -n 2 --dist worksteal $(PYTEST_ARGS)

bench: $(STAMP)
	for bench in bench/*.py; do $(BIN)/python $$bench || exit 1; done

# The README's screenshots, taken by the dashboard's browser tests.
SCREENSHOTS := dashboard-sign-in dashboard-overview dashboard-agent-builder-offline dashboard-knowledge dashboard-tools \
	dashboard-integrations dashboard-journey-whatsapp dashboard-conversations-list dashboard-conversation-person dashboard-settings
screenshots: $(STAMP)
	$(BIN)/python -m pytest -q tests/dashboard/test_foundation_browser.py tests/dashboard/test_journey_browser.py tests/dashboard/test_agents_browser.py \
		tests/dashboard/test_knowledge_browser.py tests/dashboard/test_channels_browser.py tests/dashboard/test_inbox_browser.py
	mkdir -p docs/screenshots
	for name in $(SCREENSHOTS); do cp test-artifacts/$$name.png docs/screenshots/; done
