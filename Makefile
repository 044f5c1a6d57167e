# make demo: install, then run the offline demo profile through every stage.
# make test: install, then lint and run the test suite.
# make tui: the wizard on the demo profile.
# make test-min: the fast tests in a separate venv at pyproject's dependency floors.
VENV ?= .venv
VENV_MIN ?= .venv-min
# FLOORS=--all: the compiled packages at their floors too (with VENV_MIN=.venv-min-all)
FLOORS ?=
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo tui test test-min lint seeds bench clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

demo: install
	$(PY) -m retclip_pipeline --profile profiles/demo.toml

tui: install
	$(VENV)/bin/retclip-tui --profile profiles/demo.toml

lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

test: lint
	$(PY) -m pytest -q

# The floors of the pure-Python stack pinned (scripts/floors.py), torch and torchvision from
# constraints.txt (local disk); the compiled packages as the resolver picks them.
test-min:
	test -x $(VENV_MIN)/bin/python || python3 -m venv $(VENV_MIN)
	$(VENV_MIN)/bin/python -m pip install -q --upgrade pip
	$(VENV_MIN)/bin/python scripts/floors.py $(FLOORS) --out $(VENV_MIN)/floors.txt
	$(VENV_MIN)/bin/python -m pip install -q -c constraints.txt -c $(VENV_MIN)/floors.txt -e '.[dev]'
	$(VENV_MIN)/bin/python -m pip freeze --exclude-editable > $(VENV_MIN)/installed.txt
	$(VENV_MIN)/bin/python -m pytest -q -m "not slow and not snapshot" --snapshot-warn-unused

seeds: install
	$(PY) scripts/make_seeds.py

bench: install
	$(PY) bench/convert_bench.py
	$(PY) bench/fetch_bench.py

clean:
	rm -rf runs .pytest_cache
