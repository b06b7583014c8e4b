# Concord: `make run` sets everything up and serves the app; `make test` runs every check CI runs.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000
LOCK := requirements/dev.lock

.PHONY: run test lint typecheck migrations-check pytest setup serve lock clean

$(VENV)/.installed: $(LOCK) pyproject.toml
	@test -x $(PY) || "$$(bin/find-python)" -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --require-hashes -r $(LOCK)
	touch $@

setup: $(VENV)/.installed
	$(PY) manage.py migrate --no-input
	$(PY) manage.py setup_demo
	$(PY) manage.py load_demo

serve: setup
	@echo "Concord is at http://$(HOST):$(PORT)/  (demo logins in README.md)"
	$(PY) manage.py runserver $(HOST):$(PORT)

run: serve

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(VENV)/.installed
	$(VENV)/bin/mypy .

migrations-check: $(VENV)/.installed
	DJANGO_SETTINGS_MODULE=config.settings.test CONCORD_TEST_DATABASE_URL=sqlite:///:memory: \
		$(PY) manage.py makemigrations --check --dry-run

pytest: $(VENV)/.installed
	$(VENV)/bin/pytest

test: lint typecheck migrations-check pytest

# Regenerate the lock files after changing pyproject.toml (needs network access to PyPI).
lock:
	$(PY) -m pip install --quiet uv
	$(VENV)/bin/uv pip compile pyproject.toml --extra dev --python-version 3.12 --generate-hashes -o requirements/dev.lock
	$(VENV)/bin/uv pip compile pyproject.toml --python-version 3.12 --generate-hashes -o requirements/base.lock

clean:
	rm -rf $(VENV) var/staticfiles .mypy_cache .ruff_cache .pytest_cache
