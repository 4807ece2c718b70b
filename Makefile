# The two commands of the README: `make run` and `make test`. Everything else is a helper
# (`make serve`: production serving, docs/operations.md).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PORT ?= 5000
export FLASK_APP := app

.PHONY: run serve test install bench fuzz clean

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

# gunicorn (WEB_CONCURRENCY workers on DASHBOARD_BIND, 127.0.0.1:8000) and one scheduler process.
serve: $(STAMP)
	scripts/serve.sh

test: $(STAMP)
	scripts/test.sh $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python bench/ingest.py

fuzz: $(STAMP)
	$(BIN)/python -m fuzz $(FUZZ_ARGS)

clean:
	rm -rf $(VENV) instance .pytest_cache
