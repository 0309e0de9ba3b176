# Two commands for a newcomer (README): `make run` and `make test`.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: install lock run test lint schema schema-release clean bench bench-quick bench-stages soak browser promtool pgbouncer valgrind systemd-analyze demo-burst chaos chaos-short cluster cluster-deps bench-cluster

# The locks (docs/operations.md, "Deploying"): exact versions with hashes, made by `make lock`
# from pyproject.toml. requirements/dev.txt (extras dev, local and bench) is what every
# command here runs on; requirements/production.txt (the base dependencies, the same pins) is
# what deploy/ installs. tests/test_locks.py fails when pyproject.toml and the locks disagree.
DEV_LOCK := requirements/dev.txt
PROD_LOCK := requirements/production.txt

$(STAMP): pyproject.toml $(DEV_LOCK)
	@command -v $(PYTHON) >/dev/null || { echo "Python 3.11 is needed ($(PYTHON) not found)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --require-hashes -r $(DEV_LOCK)
	$(PY) -m pip install --quiet --no-deps -e .
	@touch $(STAMP)

install: $(STAMP)

# The platform is fixed so that the locks do not depend on who runs this; pins already in a
# lock are kept unless UPGRADE=1 asks for the newest versions pyproject.toml allows.
LOCK := $(PY) -m uv pip compile pyproject.toml --quiet --generate-hashes --python-version 3.11 \
	--python-platform x86_64-unknown-linux-gnu --custom-compile-command "make lock" \
	$(if $(UPGRADE),--upgrade)

## Regenerate requirements/*.txt from pyproject.toml (UPGRADE=1: newest allowed versions).
lock: install
	$(LOCK) -o $(PROD_LOCK)
	$(LOCK) --extra dev --extra local --extra bench -c $(PROD_LOCK) -o $(DEV_LOCK)

# PostgreSQL and Redis: configured (DATABASE_URL, REDIS_URL), else running on the default
# local ports, else started from pip-installed binaries for as long as the command runs.
WITH_SERVICES := $(PY) -m devtools.services --

## Install, migrate, seed the demo and run the whole stack until Ctrl-C (FLOWER=1: with Flower).
run: install
	$(if $(FLOWER),$(PY) -m pip install --quiet -e '.[flower]')
	$(WITH_SERVICES) sh -c '$(PY) -m devtools.bootstrap && exec $(PY) -m devtools.stack $(if $(FLOWER),--flower)'

## Write the OpenAPI schema to docs/openapi.yaml (tests/infra/test_schema_file.py fails when
## it is stale) and check it against the last release's (docs/compatibility.md).
schema: install
	DJANGO_SETTINGS_MODULE=config.settings.test $(PY) manage.py spectacular --validate \
		--fail-on-warn --file docs/openapi.yaml
	$(PY) -m devtools.schema_diff

## Keep docs/openapi.yaml as the schema of the version it carries (CHANGELOG.md, on release).
schema-release: schema
	$(PY) -m devtools.schema_diff --release

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

## systemd-analyze, which verifies deploy/systemd/ in the tests (Debian's systemd; CI runs it).
systemd-analyze:
	@command -v systemd-analyze >/dev/null || { \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends systemd; }

## promtool, which validates deploy/prometheus/ in the tests (Debian's prometheus; CI runs it).
promtool:
	@command -v promtool >/dev/null || { \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus; }

## PgBouncer, which the tests put before PostgreSQL in transaction pooling (Debian's; CI runs it).
pgbouncer:
	@test -x /usr/sbin/pgbouncer || command -v pgbouncer >/dev/null || { \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends pgbouncer; }

## valgrind, whose callgrind counts instructions for bench.instructions and its test (Debian's).
valgrind:
	@command -v valgrind >/dev/null || { \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends valgrind; }

## HAProxy and iproute2 for `make cluster` and its tests, with PgBouncer (Debian's; CI runs it).
cluster-deps: pgbouncer
	@test -x /usr/sbin/haproxy && { test -x /usr/sbin/ip || test -x /usr/bin/ip; } || { \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends haproxy iproute2; }

## Several hosts on one machine behind HAProxy, PgBouncer before a private PostgreSQL, until
## Ctrl-C (docs/cluster.md; HOSTS=N hosts, default 3; CLUSTER_PORT=P, default 8090).
cluster: install cluster-deps
	$(PY) -m devtools.cluster $(if $(HOSTS),--hosts $(HOSTS)) $(if $(CLUSTER_PORT),--port $(CLUSTER_PORT))

## The campaign-burst benchmark (README, Performance): under 3 minutes. Each runner writes its
## files to bench/runs/<run>/ (ignored by git), appends a line to bench/results/INDEX.md and
## prints a tar command to share them (docs/performance.md, Measuring).
bench-quick: install
	BENCH_COMMAND="make bench-quick" $(PY) -m bench.run --mode quick

## Each stage's drain rate with 1 and 2 worker processes, the other stages stopped (a few
## minutes; run it on a quiet machine). PROCESSES=1,2,3 ORDERS=40000 change the runs.
PROCESSES ?= 1,2
ORDERS ?= 20000
bench-stages: install
	$(PY) -m bench.stage_drain --processes $(PROCESSES) --orders $(ORDERS)

## The full benchmark (about 20 minutes, loads both cores): 5-minute end-to-end run, 1 M backlog.
## Its JSON and chart also replace the previous full run's in bench/results/.
bench: install
	BENCH_COMMAND="make bench" $(PY) -m bench.run --mode full

## The benchmark through the cluster (docs/performance.md, Measuring): 1 host, then 3, behind
## HAProxy; about 15 minutes (QUICK=1: about 4); results in bench/runs/cluster-*/.
bench-cluster: install cluster-deps
	BENCH_COMMAND="make bench-cluster$(if $(QUICK), QUICK=1)" $(PY) -m bench.cluster \
		--mode $(if $(QUICK),quick,full) $(if $(BENCH_CLUSTER_PORT),--port $(BENCH_CLUSTER_PORT))

## The soak (docs/soak.md): 20 minutes of orders on 4 keep-alive connections,
## per-minute figures and verdicts, results in bench/runs/soak-*/ (MINUTES=3: a short one).
## ORDERS=2000000 [RATE=160]: the long soak, a paced offer until that many orders were
## accepted, reported every 5 minutes (docs/soak.md, The long soak).
soak: install
	BENCH_COMMAND="make soak$(if $(MINUTES), MINUTES=$(MINUTES))$(if $(ORDERS), ORDERS=$(ORDERS))$(if $(RATE), RATE=$(RATE))" $(PY) -m bench.soak $(if $(MINUTES),--minutes $(MINUTES)) $(if $(ORDERS),--orders $(ORDERS)) $(if $(RATE),--rate $(RATE))

## The chaos suite (docs/reliability.md): faults injected into the whole stack on private
## engines, every invariant checked afterwards. Full form about 15 minutes; `make test` runs
## the short form (about 2.5 minutes).
chaos: install
	BENCH_COMMAND="make chaos" $(PY) -m bench.chaos --mode full

chaos-short: install
	BENCH_COMMAND="make chaos-short" $(PY) -m bench.chaos --mode short

## With `make run` going in another terminal: a few thousand chatbot orders, with progress.
demo-burst: install
	$(WITH_SERVICES) $(PY) manage.py demo_burst

clean:
	rm -rf $(VENV) .run
