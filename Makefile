# A fresh clone needs python3 and make: each target creates .venv and installs what it needs.
VENV := .venv
PYTHON := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test bench clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	$(PYTHON) -m pip install --quiet -e '.[test]'
	touch $(STAMP)
	@echo "brahma is installed in $(VENV)/bin: run $(VENV)/bin/brahma, or . $(VENV)/bin/activate to have brahma on PATH"

demo: $(STAMP)
	$(VENV)/bin/brahma demo

test: $(STAMP)
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .
	$(PYTHON) -m pytest -q -n 2 --dist worksteal

bench: $(STAMP)
	$(PYTHON) bench/run.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis .brahma
