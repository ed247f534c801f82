# Set-up and everyday commands. Each target creates .venv on first use and
# installs everything vsa needs into it; torch is pinned to the CPU build
# (torch==2.13.0) so a fresh machine never downloads a CUDA build.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH_PIN ?= torch==2.13.0

.PHONY: install demo test clean

$(BIN)/vsa: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/python -m pip install --quiet "$(TORCH_PIN)"
	$(BIN)/python -m pip install --quiet -e ".[dev,stream,display,eval,web]"
	@touch $@

install: $(BIN)/vsa

demo: install
	$(BIN)/vsa demo

test: install
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) demo-out .pytest_cache .hypothesis
