# Two-command quick start: `make demo` (set up, crop the bundled photo) and `make test` (set up, run the tests).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install -q --disable-pip-version-check -c constraints.txt

.PHONY: setup demo test lint bench clean
setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) -e '.[dev]'
	touch $@

demo: setup
	$(VENV)/bin/opencrop crop examples/astronaut.jpg --ratio 16:9 --ratio 1:1 --ratio 9:16 --out out/ --json

test: setup
	$(PY) -m pytest

lint: setup
	$(VENV)/bin/ruff check src tests benchmarks scripts

clean:
	rm -rf out .pytest_cache
