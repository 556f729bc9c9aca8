# `make test` and `make demo` each do all their own set-up on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PLUGINS := $(wildcard plugins/*/pyproject.toml)

.PHONY: test lint typecheck unit demo bench bench-live bench-sqs bench-pii opensearch bench-bulk clean

$(STAMP): pyproject.toml $(PLUGINS)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[emulator,demo,dev]' $(foreach p,$(dir $(PLUGINS)),-e $(p))
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check indexer plugins tests docker conftest.py
	$(BIN)/ruff format --check indexer plugins tests docker conftest.py

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest

test: lint typecheck unit

# A real OpenSearch node for the tests (build/opensearch/, fetched once from Maven Central;
# needs Java 17 and Maven). Without it the tests that need one are skipped, saying so.
opensearch: $(STAMP)
	$(BIN)/python -m tests.opensearch_node fetch

# Bulk throughput of the OpenSearch sink on the real node beside osmem-server (prints a table)
bench-bulk: opensearch
	$(BIN)/python -m tests.bench_bulk

# Replay throughput per CPU-second beside json.loads, orjson and parse_envelope (prints a table)
bench: $(STAMP)
	$(BIN)/python -m pip install --quiet orjson
	$(BIN)/python -m tests.bench_replay

# Live: emulator -> worker -> osmem-server at rising conversation rates (prints a table; BENCH_RATES=50,100,200)
bench-live: $(STAMP)
	$(BIN)/python -m tests.bench_live

# Scale-out: 1, 2 and 4 replicas sharing an SQS queue fed by the emulator as EventBridge (prints a table)
bench-sqs: $(STAMP)
	$(BIN)/python -m tests.elasticmq fetch
	$(BIN)/python -m tests.bench_sqs

demo: $(STAMP)
	$(BIN)/transcript-indexer demo

# Recall, precision and throughput of the PII rules beside Presidio (prints tables; exit 1 = a target missed)
bench-pii: $(STAMP)
	$(BIN)/python -m pip install --quiet -e 'plugins/transcript-indexer-pii[bench]'
	$(BIN)/python -m indexer_pii.benchmark

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache build/opensearch
