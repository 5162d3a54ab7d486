PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test install install-test bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)

# torch first: a bare torch requirement in a fresh venv resolves to a 3 GB CUDA build.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "torch==2.13.0" || $(BIN)/pip install -q --index-url https://download.pytorch.org/whl/cpu torch
	$(BIN)/pip install -q -e ".[dev,netcdf]"
	touch $@

# the tests also compare the classical methods with DAPPER (a test oracle, never used by the app)
$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/pip install -q -e ".[dev,netcdf,dapper]"
	touch $@

install: $(VENV)/.installed

install-test: $(VENV)/.installed-test

run: install
	$(BIN)/python main.py

test: install-test
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV)
