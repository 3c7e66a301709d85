# Two commands for a new user: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: install run demo test lint clean

$(BIN)/live: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(BIN)/live

install: $(BIN)/live

# The JavaScript client's dev dependencies (tests and type checks), from its lock file.
JS_DEPS := clients/js/node_modules/.package-lock.json
$(JS_DEPS): clients/js/package-lock.json
	cd clients/js && npm ci --no-audit --no-fund --loglevel=error
	touch $(JS_DEPS)

run: install
	$(BIN)/live serve --demo

test: install
	.ci/install-services
	$(MAKE) $(JS_DEPS)
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache clients/js/node_modules
