# PinText: the two commands a new machine needs are `make demo` and `make test`.
# Every target installs what it needs first; re-running reuses the virtual environment and the download cache.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: install test demo eval bench up down clean

$(STAMP): pyproject.toml
	@echo ">> creating $(VENV) and installing pintext with all extras"
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --progress-bar off -e '.[all]'
	touch $(STAMP)

install: $(STAMP)

# The managed servers `make test` needs, as <pintext group>:<version>. Started one after another: on 2 cores that
# took 28 s for the three, against 39 s in parallel (docs/opensearch.md).
TEST_SERVERS := opensearch:3.5.0 opensearch:2.19.1 elasticsearch:8.15.0

up: install
	@echo ">> starting the managed OpenSearch node (downloads once into the cache)"
	$(BIN)/pintext opensearch up
	$(BIN)/pintext opensearch status

# Every managed server: both OpenSearch versions, Elasticsearch, Kafka (each stops only what PinText started).
down:
	-$(BIN)/pintext opensearch down
	-$(BIN)/pintext opensearch down --secure
	-$(BIN)/pintext elasticsearch down
	-$(BIN)/pintext kafka down

# The whole suite on OpenSearch 3.5.0 (and Elasticsearch 8.15.0), then the OpenSearch tests again on 2.19.1.
# Servers that were already running are used and left running; the ones started here are stopped, also on failure.
test: install
	@echo ">> running the whole suite against real servers"
	@status=0; started=""; \
	for server in $(TEST_SERVERS); do \
	  group=$${server%%:*}; version=$${server#*:}; \
	  $(BIN)/pintext $$group status --version $$version >/dev/null 2>&1 && continue; \
	  $(BIN)/pintext $$group up --version $$version || { status=$$?; break; }; \
	  started="$$started $$server"; \
	done; \
	if [ $$status = 0 ]; then \
	  $(BIN)/python -m pytest $(PYTEST_ARGS) || status=$$?; \
	  echo ">> the OpenSearch tests again, on OpenSearch 2.19.1 (not the fault tests: they start their own 3.5.0 nodes)"; \
	  $(BIN)/python -m pytest -m "opensearch and not faults" --opensearch-version 2.19.1 $(PYTEST_ARGS) \
	    || { rc=$$?; [ $$status = 0 ] && status=$$rc; }; \
	fi; \
	for server in $$started; do $(BIN)/pintext $${server%%:*} down --version $${server#*:}; done; \
	exit $$status

demo: install
	@echo ">> PinText demo: sample -> pairs -> train -> index -> ingest -> search (scripts/demo.sh)"
	bash scripts/demo.sh

# Trains PinText-SR and PinText-MTL on the sample and compares them with BM25 and a random model (issue 4's report).
eval: install
	$(BIN)/pintext pairs --events data/sample/events.jsonl.gz --pins data/sample/pins.jsonl \
	  --users data/sample/users.jsonl --out out/pairs
	$(BIN)/pintext train-eval --pairs out/pairs --out out/train-eval --threads 1
	rm -rf docs/results/train-eval && mkdir -p docs/results && cp -r out/train-eval/report docs/results/train-eval
	@echo ">> report: docs/results/train-eval/report.md"

bench: install
	$(BIN)/pintext bench --profile quick

clean:
	rm -rf $(VENV) build *.egg-info
