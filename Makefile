# Two commands do all set-up on a fresh machine: `make run` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
# Where `make run`, `make demo` and `make serve` listen: an address and a port, as gunicorn.conf.py reads them.
HOST   ?= 127.0.0.1
PORT   ?= 8000
DEMO_PORT ?= 5173
# The browser of the end-to-end tests (tests/e2e); installed from Debian's packages when missing.
CHROMIUM ?= /usr/bin/chromium
# The TLS proxy of the deployment tests (tests/deploy) and the load generator of benchmarks/.
NGINX  ?= /usr/sbin/nginx
WRK    ?= /usr/bin/wrk
# The metrics scraper of the deployment tests (tests/deploy/test_prometheus.py).
PROMETHEUS ?= /usr/bin/prometheus
# The connection pooler of the deployment tests (tests/deploy/test_pgbouncer.py) and benchmarks/pgbouncer.py.
PGBOUNCER ?= /usr/sbin/pgbouncer
# The production app server, as `make serve` runs it (gunicorn.conf.py reads HOST, PORT and
# WEB_CONCURRENCY from the environment); benchmarks start it the same way.
GUNICORN = $(BIN)/python -m gunicorn -c authproject/gunicorn.conf.py authproject.wsgi
SUDO   := $(if $(filter 0,$(shell id -u)),,sudo)

.PHONY: run demo serve worker superuser test bench migrate install install-test clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-test: requirements.txt requirements-test.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-test.txt
	touch $@ $(VENV)/.installed

# Playwright drives this Chromium and never downloads a browser of its own.
$(CHROMIUM):
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core

# A Debian package whose scripts would start the system's own service (nginx on port 80, prometheus
# on 9090, pgbouncer on 6432): a policy-rc.d that refuses (only while installing, and only if the
# machine has none) keeps it stopped; the tests run their own.
define apt_install_stopped
	$(SUDO) apt-get update -qq
	if [ -e /usr/sbin/policy-rc.d ]; then \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $(1); \
	else \
	  printf '#!/bin/sh\nexit 101\n' | $(SUDO) tee /usr/sbin/policy-rc.d >/dev/null && $(SUDO) chmod +x /usr/sbin/policy-rc.d; \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $(1); status=$$?; \
	  $(SUDO) rm -f /usr/sbin/policy-rc.d; exit $$status; \
	fi
endef

$(NGINX):
	$(call apt_install_stopped,nginx-light)

$(PROMETHEUS):
	$(call apt_install_stopped,prometheus)

$(PGBOUNCER):
	$(call apt_install_stopped,pgbouncer)

$(WRK):
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends wrk

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

# The development settings of this checkout, for manage.py only (authproject/settings.py reads them
# through DJANGO_ENV_FILE, which manage.py sets): written once, when missing, and never read by
# `make serve` or gunicorn. A variable set in the environment wins over the file.
.env:
	@printf '%s\n' \
	  '# Development settings of this checkout, written by make run, demo or superuser when missing.' \
	  '# manage.py reads them; make serve and gunicorn never do. A variable set in the environment wins.' \
	  'DJANGO_DEBUG=1' >$@
	@echo 'Wrote $@ (DJANGO_DEBUG=1): development settings for manage.py in this checkout.'

# Development server with DEBUG on (SQLite and a local-memory cache unless DATABASE_URL/CACHE_URL say otherwise).
run: install .env
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py runserver $(HOST):$(PORT)

# The demo page (demo/) on http://localhost:$(DEMO_PORT) beside the API on port $(PORT): another
# origin on the same site, as an SPA would be. Ctrl-C stops both.
demo: install .env
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python demo/serve.py --port $(DEMO_PORT) --api http://localhost:$(PORT)/api & page=$$!; \
	trap 'kill $$page 2>/dev/null' EXIT INT TERM; \
	$(BIN)/python manage.py runserver $(HOST):$(PORT)

# Production's migrations alone, for deploys that migrate first and then roll the app servers: the
# environment of `make serve` (no .env), and the same lock (manage.py migrate_once: on PostgreSQL an
# advisory lock, so that it may run beside starting app servers too).
migrate: install
	DJANGO_ENV_FILE= $(BIN)/python manage.py migrate_once --noinput

# Production: DEBUG off unless DJANGO_DEBUG says otherwise, so DJANGO_SECRET_KEY must be set (see
# README, Deployment). Migrates, collects the static files that WhiteNoise serves, then runs gunicorn
# on HOST:PORT. No .env: an empty DJANGO_ENV_FILE keeps manage.py from reading one. Any number may
# start at once on one database: migrate_once migrates under a lock, so one migrates, the others wait.
serve: install
	DJANGO_ENV_FILE= $(BIN)/python manage.py migrate_once --noinput
	DJANGO_ENV_FILE= $(BIN)/python manage.py collectstatic --noinput --verbosity 0
	HOST=$(HOST) PORT=$(PORT) exec $(GUNICORN)

# Sends the mail that the app servers queue (TASKS_BACKEND=database, the default with DEBUG off):
# Django's database task worker, DEBUG as `make serve`. Any number, on any machine, beside the app
# servers: each claims a task with SELECT ... FOR UPDATE SKIP LOCKED (see README, Deployment).
# More options in WORKER_ARGS, e.g. WORKER_ARGS="--interval 5". With METRICS_TOKEN set, it serves its
# metrics (the mails it sent) on WORKER_METRICS_HOST:WORKER_METRICS_PORT (manage.py accounts_worker:
# db_worker plus that server). Not in gunicorn's PROMETHEUS_MULTIPROC_DIR, even when the environment
# names it for `make serve`: the worker counts in its own process and serves its own counts.
worker: install
	unset PROMETHEUS_MULTIPROC_DIR prometheus_multiproc_dir; \
	  exec $(BIN)/python manage.py accounts_worker $(WORKER_ARGS)

# The first admin (or another): asks for a username, email and password; DEBUG on, like `make run`.
# With DJANGO_SUPERUSER_USERNAME, DJANGO_SUPERUSER_EMAIL and DJANGO_SUPERUSER_PASSWORD set it asks nothing.
superuser: install .env
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py createsuperuser $${DJANGO_SUPERUSER_PASSWORD:+--noinput}

# The whole suite, on whatever DATABASE_URL and CACHE_URL name (SQLite and local memory by default),
# with the end-to-end tests in Chromium.
test: install-test $(CHROMIUM) $(NGINX) $(WRK) $(PROMETHEUS) $(PGBOUNCER)
	CHROMIUM=$(CHROMIUM) PROMETHEUS=$(PROMETHEUS) PGBOUNCER=$(PGBOUNCER) PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 \
	  $(BIN)/python -m pytest $(PYTEST_ARGS)

# The hot paths against a bare floor view, beside dj-rest-auth (benchmarks/hot_paths.py; ~5 minutes):
# serves this checkout as `make serve` does, on PostgreSQL and Redis, and writes its section of
# benchmarks/RESULTS.md. More options in BENCH_ARGS, e.g. BENCH_ARGS="--compare-ref 84c7f80".
bench: install $(WRK)
	WRK=$(WRK) $(BIN)/python benchmarks/hot_paths.py --output benchmarks/RESULTS.md $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis db.sqlite3 db.sqlite3-* test_db.sqlite3* benchmarks/.peer-venv
