# vnas: the two entry points are `make demo` and `make test`; both install on first use.
# Every target is idempotent: the venv is rebuilt only when pyproject.toml or
# constraints.txt change (tracked by the stamp file).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: install test demo lint format clean-results help

help:
	@echo "make demo    set up and run the whole pipeline on the synthetic phantom dataset"
	@echo "make test    set up and run the test suite"
	@echo "make lint    ruff check + format check"

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch first, pinned, so that nothing pulls a CUDA build
	$(BIN)/python -m pip install --quiet -c constraints.txt "torch==2.13.0"
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[test]"
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests

format: $(STAMP)
	$(BIN)/ruff format src tests
	$(BIN)/ruff check --fix src tests

demo: $(STAMP)
	$(BIN)/vnas arch show nih-paper
	$(BIN)/vnas arch stats nih-paper --patch 16 32 32 --width 0.125

clean-results:
	rm -rf results/* .snakemake
	git checkout -- results
