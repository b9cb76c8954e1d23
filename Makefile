# Set-up and the two commands of the README's quick start.
# TORCH: the torch requirement installed before the package, so that pip does not pull a
# multi-GB CUDA build where a CPU wheel is wanted (e.g. TORCH="torch --index-url
# https://download.pytorch.org/whl/cpu" on a machine without a GPU).
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
BIN := $(VENV)/bin

.PHONY: setup demo test lint docs clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -m pip install --quiet -e ".[test,docs]"
	touch $@

demo: setup
	$(BIN)/upscale demo --out upscale-demo --overwrite

test: setup
	$(BIN)/python -m pytest

docs: setup
	# the CLI reference runs `typer` from the environment
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/mkdocs build --strict

lint: setup
	$(BIN)/ruff check upscale tests benchmarks docs/hooks
	$(BIN)/ruff format --check upscale tests benchmarks docs/hooks

clean:
	rm -rf upscale-demo site .pytest_cache
