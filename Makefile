# The two commands (see README):  make run   |   make test
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: setup run test test-fast ui dashboard lint bench clean

$(BIN)/journeys: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	@touch $@

setup: $(BIN)/journeys

# the tests also run the Spark engine (PySpark, about 400 MB; its tests skip with a reason
# when Java is missing), which `make run` does not need
$(VENV)/.spark-installed: $(BIN)/journeys
	$(BIN)/pip install --quiet -e '.[test,spark]'
	@touch $@

## set up, then load the committed sample data and build everything; prints the dashboard path
run: setup
	$(BIN)/journeys run

## set up, then run the whole test suite (browser tests skip when Chromium is absent)
test: setup $(VENV)/.spark-installed
	$(BIN)/pytest

## the suite without the slow end-to-end runs and the browser tests
test-fast: setup
	$(BIN)/pytest -m "not slow and not browser"

ui: setup
	$(BIN)/journeys ui

dashboard: setup
	$(BIN)/journeys dashboard

lint: setup
	$(BIN)/ruff check .

clean:
	rm -rf warehouse output .pytest_cache
