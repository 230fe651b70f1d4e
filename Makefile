# vnas: the two entry points are `make demo` and `make test`; both install on first use.
# Every target is idempotent: the venv is rebuilt only when pyproject.toml,
# constraints.txt or requirements.lock change (tracked by the stamp file).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LOCK := requirements.lock
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: install test test-fast demo pipeline demo-time demo-setup experiment experiment2-step1 experiment2-steps23 docs bench lint format clean-results help cluster-up cluster-down dvc.yaml lock plots

help:
	@echo "make demo    set up and run the whole pipeline on the synthetic phantom dataset"
	@echo "make test    set up and run the test suite"
	@echo "make test-fast  the suite without the tests marked slow (Snakemake, DVC, long runs)"
	@echo "make lint    ruff check + format check"
	@echo "make pipeline CONFIG=liver.yaml TARGET=results/tables/liver.csv  Snakemake on your config file, checked first"
	@echo "make experiment  run the known-answer experiment and write EXPERIMENTS.md (~1-2 h)"
	@echo "make experiment2-step1, experiment2-steps23  the second known-answer experiment"
	@echo "make docs    regenerate the network size tables (README.md, docs/network.md) and docs/demo.md"
	@echo "make demo-time  time a fresh \`make demo\` and write its wall time into README.md"
	@echo "make demo-setup  time the parallel install and the in-run report (after make demo-time), into BENCHMARKS.md"
	@echo "make plots   dvc plots show as a page that works offline (dvc_plots/index.html)"
	@echo "make bench   rerun every CPU benchmark, rewrite BENCHMARKS.md and README's memory table"
	@echo "make lock    re-resolve requirements.lock (and workflow/envs/vnas.yaml) from pyproject.toml"

install: $(STAMP)

# Exactly the locked versions, each checked against its hash; --no-deps so that nothing
# outside the lock comes in. Two pip processes at once, each on half the lock: one pip
# keeps one core busy for a minute and a half (workflow/scripts/install_lock.py). Then
# vnas itself, editable (its code is this checkout), and pip check over it all.
$(STAMP): pyproject.toml constraints.txt $(LOCK)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PYTHON) workflow/scripts/install_lock.py $(BIN)/python $(LOCK) --jobs 2
	$(BIN)/python -m pip install --quiet --no-deps -e .
	$(BIN)/python -m pip check
	touch $(STAMP)

# Re-resolve the lock from pyproject.toml's ranges with pip-tools (pip-compile): newest
# versions that fit, torch held to constraints.txt (the CPU wheel in pip's find-links;
# the CUDA wheels on PyPI are never considered), sha256 of every file. Then the conda
# environment file is rewritten with the same pins. Review the diff, `make install`,
# `make test`, commit both files.
# vnas itself is left out of the lock (--unsafe-package vnas: its "test" extra names it).
lock:
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet "pip-tools>=7.4"
	CUSTOM_COMPILE_COMMAND="make lock" $(BIN)/pip-compile --quiet --extra test \
		--generate-hashes --no-allow-unsafe --unsafe-package vnas --strip-extras \
		--no-emit-index-url --no-emit-find-links -c constraints.txt -o $(LOCK) pyproject.toml
	$(BIN)/python workflow/scripts/conda_env.py

test: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/python -m pytest

# The inner loop: every test but those marked slow (they start Snakemake, DVC or a whole
# pipeline run, tests/conftest.py). `make test` (CI's, the README's) runs them all.
test-fast: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/python -m pytest -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests

format: $(STAMP)
	$(BIN)/ruff format src tests
	$(BIN)/ruff check --fix src tests

# The whole DAG on the synthetic phantom: tables, manual grid, figures and reports, all
# under results/ (git-ignored): `git status` stays clean. The committed docs/demo.md is
# the maintainers' (`make docs`). On a CPU the "gpu" resource just counts concurrent
# training jobs (threads: 1 each).
demo: $(STAMP)
	$(BIN)/snakemake --cores 2 --resources gpu=2 \
		--report results/report/synthetic_snakemake.html --report-after-run -- all
	@echo
	@cat results/tables/synthetic.md
	@echo
	@echo "Where the results are:"
	@echo "  table:       results/tables/synthetic.md (.csv; manual grid: synthetic_manual.md)"
	@echo "  figures:     results/figures/synthetic/"
	@echo "  report:      results/report/synthetic.html (Snakemake's: synthetic_snakemake.html)"
	@echo "  run folders: results/synthetic/search/fold*/, results/synthetic/models/*/fold*/"
	@echo "  logs:        results/logs/synthetic/"

# Snakemake on a config file of your own (a `vnas plan` block, a colleague's file), after
# checking that it is plain YAML: Snakemake runs the `?` expressions of a --configfile
# holding `__use_yte__` as Python when it loads the file, before the Snakefile's first
# line, so the Snakefile's own check would come too late (README, Reliability).
#   make pipeline CONFIG=liver.yaml TARGET=results/tables/liver.csv SNAKEMAKE_ARGS="--cores 8"
CONFIG ?=
TARGET ?= all
SNAKEMAKE_ARGS ?= --cores 2
pipeline: $(STAMP)
	$(BIN)/python workflow/scripts/plain_config.py $(if $(CONFIG),'$(CONFIG)')
	$(BIN)/snakemake $(SNAKEMAKE_ARGS) --configfile '$(CONFIG)' -- $(TARGET)

# The known-answer experiment (EXPERIMENTS.md, params.yaml `experiments.known_answer`):
# every job under results/experiments/known_answer, timed as a whole (wall, CPU, load
# average), then its results written into EXPERIMENTS.md and docs/images/experiments/.
EXPERIMENT := results/experiments/known_answer
experiment: $(STAMP)
	$(BIN)/python workflow/scripts/timed_run.py --out $(EXPERIMENT)/run_time.json \
		--label commit=$$(git rev-parse --short HEAD) -- \
		$(BIN)/snakemake --cores 2 --resources gpu=2 -- $(EXPERIMENT)_summary.json
	$(BIN)/vnas experiment report --summary $(EXPERIMENT)_summary.json \
		--timing $(EXPERIMENT)/run_time.json --markdown EXPERIMENTS.md \
		--images docs/images/experiments

# The second known-answer experiment (EXPERIMENTS.md, "Known answer 2";
# workflow/rules/experiment2.smk), one step at a time: Steps 2-3 run only if Step 1's H5
# holds. Each step's JSON is copied into docs/experiments/known_answer2/ (committed) and
# the results block of EXPERIMENTS.md rewritten from the copies.
EXPERIMENT2 := results/experiments/known_answer2
EXPERIMENT2_DOCS := docs/experiments/known_answer2
experiment2-step1: $(STAMP)
	$(BIN)/snakemake --cores 2 --resources gpu=2 -- $(EXPERIMENT2)_step1.json
	cp $(EXPERIMENT2)_step1.json $(EXPERIMENT2_DOCS)/step1.json
	$(BIN)/vnas experiment report2 --step1 $(EXPERIMENT2_DOCS)/step1.json \
		--benchmarks $(EXPERIMENT2)/benchmarks --markdown EXPERIMENTS.md

experiment2-steps23: $(STAMP)
	$(BIN)/snakemake --cores 2 --resources gpu=2 -- $(EXPERIMENT2)_step2.json \
		$(EXPERIMENT2)_step3.json
	cp $(EXPERIMENT2)_step2.json $(EXPERIMENT2)_step3.json $(EXPERIMENT2_DOCS)/
	$(BIN)/vnas experiment report2 --step1 $(EXPERIMENT2_DOCS)/step1.json \
		--step2 $(EXPERIMENT2_DOCS)/step2.json --step3 $(EXPERIMENT2_DOCS)/step3.json \
		--benchmarks $(EXPERIMENT2)/benchmarks --markdown EXPERIMENTS.md

# Maintainers: the size and cost table of the networks at the paper's size (width 1.0,
# NIH's 64x96x96 training patch), written between the generated-block markers of both
# files; then docs/demo.md, the README's demo results (`vnas report --markdown` from the
# demo's result files, naming the revision they come from; run it at the last commit
# that changes results and commit it).
DOC_ARCHS := nih-paper lung-paper pancreas-paper manual:2d/2d manual:3d/3d manual:p3d/p3d \
	manual:2d/p3d search ahnet unet3d unet3d-cicek vnet
docs: $(STAMP)
	$(BIN)/vnas arch stats $(DOC_ARCHS) --patch 64 96 96 --width 1.0 --device cpu \
		--markdown README.md --markdown docs/network.md
	$(BIN)/snakemake --cores 2 --resources gpu=2 --forcerun demo_doc -- docs/demo.md

# Maintainers: `make demo` in a fresh clone of HEAD (sharing this venv, whose install the
# clone must not redo: -o), timed (wall, CPU, load average), and its wall time written
# into README.md between the demo-time markers. Run it on a quiet machine;
# results/demo-time/ is this target's own folder.
DEMO_TIME := results/demo-time
demo-time: $(STAMP)
	rm -rf $(DEMO_TIME)/clone
	git clone --quiet . $(DEMO_TIME)/clone
	ln -s $(CURDIR)/$(VENV) $(DEMO_TIME)/clone/$(VENV)
	$(BIN)/python workflow/scripts/timed_run.py --out $(DEMO_TIME)/run_time.json \
		--label commit=$$(git rev-parse --short HEAD) -- $(MAKE) -C $(DEMO_TIME)/clone -o $(STAMP) demo
	$(BIN)/python workflow/scripts/demo_time.py $(DEMO_TIME)/run_time.json README.md

# Maintainers, after `make demo-time`: the demo's two levers outside the networks (two pip
# processes at once; the report written by the run), each against what it replaced, in
# alternating pairs on the finished demo in $(DEMO_TIME)/clone; the record goes into
# docs/runs/ (committed) and its section into BENCHMARKS.md. About 6 minutes.
demo-setup: $(STAMP)
	$(BIN)/python workflow/scripts/demo_setup.py measure --demo-dir $(DEMO_TIME)/clone \
		--out docs/runs/demo-setup.json --markdown BENCHMARKS.md

# `dvc plots show` as a page that works offline (DVC's own loads vega from a CDN):
# dvc_plots/index.html. Arguments: `make plots PLOTS_ARGS="diff main exp-1"`.
PLOTS_ARGS ?= show
plots: $(STAMP)
	$(BIN)/python workflow/scripts/dvc_plots.py $(PLOTS_ARGS)

# Every CPU benchmark, then BENCHMARKS.md and README's goals and memory tables from the
# JSON files (about 3-4 hours on the 2-core machine, most of it the 200x512x512 volume at
# width 1.0; BENCHMARKS.md lists each part's command and load). The whole 200x512x512
# volume runs once per candidate, at width 0.25 and at the paper's 1.0. The GPU section is
# kept (benchmarks/gpu-check.sh writes it on a GPU). BENCH_OUT must hold no results of an
# earlier network (vnas bench stops at once if it does: move them away). The demo-scale
# part (the synthetic dataset's width, patch and batch, one thread) runs first, as the
# full suite's hardware part then measures the limit again.
BENCH_OUT ?= results/bench
bench: $(STAMP)
	$(BIN)/vnas bench --suite demo --device cpu --width 0.0625 --patch 32 64 64 \
		--test-patch 32 64 64 --batch-size 2 --out $(BENCH_OUT)
	$(BIN)/vnas bench --suite all --device cpu --out $(BENCH_OUT)
	$(BIN)/vnas bench --suite inference --device cpu --width 0.25 --volume 200 512 512 \
		--repeats 1 --no-inference-levers --no-compile --out $(BENCH_OUT)
	$(BIN)/vnas bench --suite inference --device cpu --width 1.0 --volume 200 512 512 \
		--repeats 1 --no-inference-levers --no-compile --out $(BENCH_OUT)
	$(BIN)/vnas bench --out $(BENCH_OUT) --markdown BENCHMARKS.md --readme README.md

# dvc.yaml is generated from params.yaml: the DVC stages of the dataset it selects.
dvc.yaml: $(STAMP)
	$(BIN)/python workflow/scripts/dvc_yaml.py

# A one-node SLURM cluster on this machine (root, Debian), for tests/cluster.
cluster-up:
	bash tests/cluster/up.sh

cluster-down:
	bash tests/cluster/down.sh

clean-results:
	rm -rf results/* .snakemake
	git checkout -- results
