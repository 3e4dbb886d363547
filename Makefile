# glassfeed — every target installs what it needs into .venv on first use.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PORT ?= 8000
DEMO_DB ?= var/demo.db

.PHONY: install demo test check format bench serve clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/glassfeed demo --db $(DEMO_DB) --port $(PORT)

serve: $(STAMP)
	$(BIN)/glassfeed serve --db $(DEMO_DB) --port $(PORT)

test: $(STAMP)
	$(BIN)/python -m pytest -q -ra $(PYTEST_ARGS)

# Static checks (CI runs `make check` then `make test`): lint, formatting, types, import layering.
check: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports

# Apply the formatter and ruff's safe fixes (then review the diff).
format: $(STAMP)
	$(BIN)/ruff format src tests benchmarks
	$(BIN)/ruff check --fix src tests benchmarks

bench: $(STAMP)
	$(BIN)/python -m benchmarks.run_all

clean:
	rm -rf var artifacts bench-results
