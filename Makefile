# make demo: install, then run the offline demo profile through every stage.
# make test: install, then lint and run the test suite.
# make tui: the wizard on the demo profile.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo tui test lint seeds bench clean

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

seeds: install
	$(PY) scripts/make_seeds.py

bench: install
	$(PY) bench/convert_bench.py
	$(PY) bench/fetch_bench.py

clean:
	rm -rf runs .pytest_cache
