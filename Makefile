# One obvious command for each routine job. Every target installs what it needs
# into .venv first, so each one works on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# CPU machines: pin the CPU build of torch (a bare `torch` pulls a multi-GB CUDA build).
# On a GPU machine: make TORCH_SPEC=torch test
TORCH_SPEC ?= torch==2.13.0
STAMP  := $(VENV)/.installed

.PHONY: demo test test-fast bench lint format typecheck clean venv

# Two distributions, both editable: padl-runtime (runtime/: load, run, serve) and padlc, which
# depends on it. One pip call, so that padlc's requirement is met by the local runtime.
$(STAMP): pyproject.toml runtime/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e "./runtime[serve]" -e ".[dev,demo]"
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/padlc demo $(ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest -q $(ARGS)

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow" $(ARGS)

bench: $(STAMP)
	$(BIN)/python -m benchmarks $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check padlc runtime tests benchmarks examples
	$(BIN)/ruff format --check padlc runtime tests benchmarks examples

format: $(STAMP)
	$(BIN)/ruff format padlc runtime tests benchmarks examples
	$(BIN)/ruff check --fix padlc runtime tests benchmarks examples

typecheck: $(STAMP)
	$(BIN)/mypy

clean:
	rm -rf $(VENV) build runtime/cpp/build .pytest_cache .mypy_cache .ruff_cache
