# Two commands do all set-up on a fresh machine with python3:
#   make run    -- creates .venv from the lock, installs accsim, runs the main job
#   make test   -- creates .venv from the lock, installs accsim with test extras, runs the suite
# Every package (pip and setuptools included) installs at the exact version pinned in
# requirements.lock, with which the whole suite passes. `make lock` re-resolves the newest
# releases that pyproject.toml allows, runs the suite on them and rewrites the lock.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
LOCK := requirements.lock
EXTRAS := test,train
STAMP := $(VENV)/.installed
LATEST := .venv-latest
PYTEST := -m pytest -q -n 2 --dist loadfile

$(STAMP): pyproject.toml $(LOCK)
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -c $(LOCK) pip setuptools wheel
	$(BIN)/pip install --quiet --disable-pip-version-check --no-build-isolation \
		-c $(LOCK) -e ".[$(EXTRAS)]"
	touch $(STAMP)

.PHONY: run test test-latest lock lint bench clean-cache
# The warm-up compiles the main job's numba kernels on both cores (cached on disk).
run: $(STAMP)
	$(BIN)/python -m accsim.warmup configs/paper_mlp.toml
	$(BIN)/accsim run configs/paper_mlp.toml

test: $(STAMP)
	$(BIN)/python $(PYTEST)

# The newest releases that pyproject.toml's ranges allow, in a separate venv, no lock.
test-latest:
	rm -rf $(LATEST)
	$(PY) -m venv $(LATEST)
	$(LATEST)/bin/pip install --quiet --disable-pip-version-check --upgrade pip setuptools wheel
	$(LATEST)/bin/pip install --quiet --disable-pip-version-check --no-build-isolation \
		-e ".[$(EXTRAS)]"
	{ echo "# Exact versions with which the whole suite passed; written by 'make lock'."; \
	  echo "# Used as a pip constraints file (-c) by the set-up: do not edit by hand."; \
	  $(LATEST)/bin/pip freeze --all --exclude-editable; } > $(LATEST)/resolved.txt
	$(LATEST)/bin/python $(PYTEST)

# Re-resolve, test, and only then rewrite the lock.
lock: test-latest
	cp $(LATEST)/resolved.txt $(LOCK)
	@echo "rewrote $(LOCK); commit it"

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	$(BIN)/python benchmarks/run_all.py

# numba's on-disk cache does not notice edits to a kernel called from another module:
# clear it after changing accsim/kernels or accsim/accumulators.
clean-cache:
	find accsim hwmodels -name '*.nbi' -delete -o -name '*.nbc' -delete
