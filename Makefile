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

up: install
	@echo ">> starting the managed OpenSearch node (downloads once into the cache)"
	$(BIN)/pintext opensearch up
	$(BIN)/pintext opensearch status

down:
	-$(BIN)/pintext opensearch down

test: install
	@echo ">> running the whole suite against real servers"
	$(BIN)/pintext opensearch up
	$(BIN)/pintext opensearch status
	status=0; $(BIN)/python -m pytest $(PYTEST_ARGS) || status=$$?; \
	  $(BIN)/pintext opensearch down; exit $$status

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
