# PinText: the two commands a new machine needs are `make demo` and `make test`.
# Every target installs what it needs first; re-running reuses the virtual environment and the download cache.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: install test demo bench up down clean

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

bench: install
	$(BIN)/pintext bench --profile quick

clean:
	rm -rf $(VENV) build *.egg-info
