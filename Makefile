# Two commands on a fresh machine: `make demo` and `make test`. Both build .venv themselves.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.installed

demo: $(VENV)/.installed
	$(BIN)/custscore demo

test: $(VENV)/.installed-dev
	$(BIN)/pytest -q -n auto --dist loadfile

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check custscore tests bench

bench: $(VENV)/.installed
	$(BIN)/python bench/simulate.py
	$(BIN)/python bench/mirror.py
	$(BIN)/python bench/analytics_pipelines.py
	$(BIN)/python bench/train.py
	$(BIN)/python bench/score.py
	$(BIN)/python bench/customer_base.py
	$(BIN)/python bench/recommend.py
	$(BIN)/python bench/forecast.py
	$(BIN)/python bench/serve.py

clean:
	rm -rf $(VENV) .custscore .pytest_cache .hypothesis
