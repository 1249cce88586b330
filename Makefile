# crontrio: `make run` starts the trio on the embedded default, `make test` runs every test.
# Everything a fresh clone needs is here: CI runs only `make test`.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PY     := $(BIN)/python
STAMP  := $(VENV)/.installed-stamp
STUBS  := protos/crontrio_pb2.py protos/crontrio_pb2_grpc.py protos/crontrio_pb2.pyi
CONF   ?= conf/conf.ini
# Parallel test workers: one more than the cores. The suite mostly waits on
# real servers and processes (2 workers kept 2 cores ~45 % busy: 10.5 min;
# 3 workers: 8.4 min, ~70 % busy); pytest-xdist spreads it, --dist loadgroup
# keeps each xdist_group on one worker.
TEST_WORKERS ?= $(shell echo $$(( $$(nproc) + 1 )))

.PHONY: all setup protos run run-distributed test test-unit test-integration test-e2e lint clean distclean help

help:
	@echo "make run     create .venv, install, start executor + dispatcher + monitor on $(CONF)"
	@echo "make run-distributed   the same with MariaDB, Redis, etcd, 2 dispatchers, 2 executors (var/distributed/)"
	@echo "make test    set up and run the whole test suite"
	@echo "make lint    ruff + mypy"
	@echo "make clean   remove var/ and caches (keeps .venv)"
	@echo "make bench   every benchmark at full size: takes tens of minutes (results in bench/results/<date>/, tables in bench/RESULTS.md)"
	@echo "make bench-quick   every benchmark at a small size in about 2 minutes (results in bench/results/tmp/)"

all: setup

$(STAMP): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

# Compiled through the crontrio/protos symlink so the stubs import crontrio.protos (setup.py's build does the same).
$(STUBS) &: protos/crontrio.proto $(STAMP)
	$(PY) -m grpc_tools.protoc -I. --python_out=. --grpc_python_out=. --pyi_out=. crontrio/protos/crontrio.proto

setup: $(STAMP) $(STUBS)

protos: $(STUBS)

run: setup
	@mkdir -p var
	./scripts/run-trio.sh $(CONF)

run-distributed: setup
	./scripts/test-deps.sh
	./scripts/run-distributed.sh

test: setup
	./scripts/test-deps.sh
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadgroup tests

test-unit: setup
	$(PY) -m pytest -n $(TEST_WORKERS) tests/unit

test-integration: setup
	$(PY) -m pytest -n $(TEST_WORKERS) tests/integration

test-e2e: setup
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadgroup tests/e2e

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# Benchmarks (bench/): real services as processes; `python -m bench.run --help`.
.PHONY: bench bench-quick
BENCH_OUT ?= bench/results/$(shell date -u +%F)
BENCH_QUICK_OUT ?= bench/results/tmp/quick-$(shell date -u +%F)

bench: setup
	./scripts/test-deps.sh
	$(PY) -m bench.run all --out $(BENCH_OUT)
	$(PY) -m bench.report $(BENCH_OUT)

bench-quick: setup
	./scripts/test-deps.sh
	$(PY) -m bench.run quick --out $(BENCH_QUICK_OUT)

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache
	find . -name __pycache__ -not -path './$(VENV)/*' -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV) $(STUBS) *.egg-info
