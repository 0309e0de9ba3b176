# Two commands for a newcomer (README): `make run` and `make test`.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: install run test lint schema clean

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "Python 3.11 is needed ($(PYTHON) not found)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

## Install, migrate, seed the demo and run the whole stack until Ctrl-C.
run: install
	$(PY) -m config.bootstrap
	$(PY) -m config.stack

## Lint, validate the OpenAPI schema, and run every test (real PostgreSQL, Redis, Celery).
test: install
	$(PY) -m config.bootstrap
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) manage.py spectacular --validate --fail-on-warn --file /dev/null
	$(VENV)/bin/pytest --create-db

clean:
	rm -rf $(VENV) .run
