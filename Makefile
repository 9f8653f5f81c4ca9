# One entry point for everything a developer or CI runs. `make help` lists the targets.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: help install system test check lint format typecheck schemas examples demo bench wheel-check lock clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

install: $(VENV)/.installed  ## create .venv with schemaheal and its test tools

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

system:  ## Debian packages the tests use (PostgreSQL 15, PgBouncer, kcat, promtool, pgvector)
	bash .ci/system-packages
	bash .ci/seclabel

test: install system  ## run the test suite on real servers (installs what it needs first)
	$(BIN)/python -m tests.run

lint: install  ## ruff lint and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: install  ## apply ruff's formatting and safe fixes
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

typecheck: install  ## mypy --strict on contracts/ and worker/
	$(BIN)/mypy

schemas: install  ## regenerate the committed JSON Schema and AsyncAPI files
	$(BIN)/python -m contracts.jsonschema --write
	$(BIN)/python -c "from worker.service.asyncapi import render; \
		open('contracts/schemas/asyncapi.json', 'w').write(render())"
	$(BIN)/python -m tests.contracts.signature_vectors --write

examples: install  ## regenerate examples/nexus/manifest.json from the models
	$(BIN)/schemaheal manifest --from-sqlalchemy examples.nexus.models:Base \
		--service orchestrator --database nexus -o examples/nexus/manifest.json

check: lint typecheck test  ## everything CI checks: lint, format, types, tests

demo: install  ## the main job on embedded defaults, with a visible demo
	$(BIN)/schemaheal dev --demo

bench: install  ## benchmarks against their peers (prints ratios)
	$(BIN)/python -m bench.inspect_plan
	$(BIN)/python -m bench.heal_empty
	$(BIN)/python -m bench.boot_gate
	$(BIN)/python -m bench.corpus
	$(BIN)/python -m bench.backfill
	$(BIN)/python -m bench.workers

wheel-check: install  ## build the wheel, install it alone in a clean venv, run schemaheal --help
	rm -rf build/wheel build/clean-venv
	$(BIN)/pip wheel --no-deps -q -w build/wheel .
	$(PYTHON) -m venv build/clean-venv
	build/clean-venv/bin/pip install -q build/wheel/*.whl
	build/clean-venv/bin/schemaheal --help > /dev/null
	@echo "wheel installs and runs: $$(ls build/wheel)"

lock: install  ## re-pin requirements.lock (hashes) from pyproject.toml
	$(BIN)/pip install -q uv
	$(BIN)/uv pip compile pyproject.toml --python-version 3.11 \
		--python-platform x86_64-manylinux_2_28 --generate-hashes --no-header -o requirements.lock

clean:  ## remove the virtual environment and caches
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
