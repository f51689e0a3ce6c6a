# Two commands do all set-up on a fresh machine: `make run` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1:8000
DEMO_PORT ?= 5173

.PHONY: run demo test migrate install install-test clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-test: requirements.txt requirements-test.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-test.txt
	touch $@

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

# Development server with DEBUG on (SQLite and a local-memory cache unless DATABASE_URL/CACHE_URL say otherwise).
run: install
	DJANGO_DEBUG=$${DJANGO_DEBUG:-1} $(BIN)/python manage.py migrate --noinput
	DJANGO_DEBUG=$${DJANGO_DEBUG:-1} $(BIN)/python manage.py runserver $(HOST)

# The demo page (demo/) on http://localhost:$(DEMO_PORT) beside the API on $(HOST): another origin
# on the same site, as an SPA would be. Ctrl-C stops both.
demo: install
	DJANGO_DEBUG=$${DJANGO_DEBUG:-1} $(BIN)/python manage.py migrate --noinput
	$(BIN)/python demo/serve.py --port $(DEMO_PORT) --api http://localhost:$(lastword $(subst :, ,$(HOST)))/api & page=$$!; \
	trap 'kill $$page 2>/dev/null' EXIT INT TERM; \
	DJANGO_DEBUG=$${DJANGO_DEBUG:-1} $(BIN)/python manage.py runserver $(HOST)

migrate: install
	$(BIN)/python manage.py migrate --noinput

# The whole suite, on whatever DATABASE_URL and CACHE_URL name (SQLite and local memory by default).
test: install-test
	$(BIN)/python -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache db.sqlite3 db.sqlite3-* test_db.sqlite3*
