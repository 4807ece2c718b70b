# The two commands of the README: `make run` and `make test`. Everything else is a helper.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PORT ?= 5000
export FLASK_APP := app

.PHONY: run test install bench fuzz clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/flask init-db
	$(BIN)/flask demo
	DASHBOARD_LIVE_DEMO=1 $(BIN)/flask run --host 127.0.0.1 --port $(PORT)

test: $(STAMP)
	scripts/test.sh $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python bench/ingest.py

fuzz: $(STAMP)
	$(BIN)/python -m fuzz $(FUZZ_ARGS)

clean:
	rm -rf $(VENV) instance .pytest_cache
