# Two commands matter: `make run` and `make test` (see README.md).
#   make run [HOST=127.0.0.1] [PORT=8080] [WORKERS=2]
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# `make run` installs only what serving needs; `make test` adds the test extras.
RUN_STAMP := $(VENV)/.installed-run
TEST_STAMP := $(VENV)/.installed-test

.PHONY: install install-test run test lint typecheck unit bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(RUN_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $(RUN_STAMP)

# The test extras are a superset of what serving needs: this stamp covers both.
$(TEST_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(TEST_STAMP) $(RUN_STAMP)

install: $(RUN_STAMP)

install-test: $(TEST_STAMP)

# HOST, PORT and WORKERS (make variables or environment) become serve's flags; unset,
# the server's own settings apply (HOST/PORT/WORKERS from the environment or .env,
# else 0.0.0.0:3000 with one worker).
run: $(RUN_STAMP)
	$(BIN)/fhir-server serve$(if $(HOST), --host $(HOST))$(if $(PORT), --port $(PORT))$(if $(WORKERS), --workers $(WORKERS))

lint: $(TEST_STAMP)
	$(BIN)/ruff check fhir_server tests bench

typecheck: $(TEST_STAMP)
	$(BIN)/mypy

test: lint typecheck
	$(BIN)/pytest -n auto --dist loadgroup

unit: $(TEST_STAMP)
	$(BIN)/pytest tests/unit -n auto

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
