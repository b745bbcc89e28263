# The two commands: `make demo` and `make test`. Both start from nothing but python3.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test typecheck docs venv bench java-test clean fuzz

# The editable install is a plain path entry (pyproject.toml's package-dir), which mypy follows.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,dev]' --config-settings editable_mode=lenient
	touch $(STAMP)

# The GUI toolkits' bindings (the `gui` extra): PyGObject builds against Debian's -dev packages,
# so they come after scripts/system-deps.sh (make demo needs none of it).
GUI_STAMP := $(VENV)/.gui-installed
$(GUI_STAMP): $(STAMP)
	bash scripts/system-deps.sh
	if $(PY) -m pip install --quiet -e '.[test,dev,gui]' --config-settings editable_mode=lenient; then \
	    touch $(GUI_STAMP); else echo "make: the gui extra did not install; the GUI tests skip"; fi

venv: $(STAMP)

demo: $(STAMP)
	$(PY) examples/demo.py

# The suite runs on every core (pytest-xdist): 4.7 min instead of 11.5 on 2 cores. Each test is
# isolated (ephemeral ports, its own temporary files), so the order they run in does not matter.
PYTEST_WORKERS ?= auto
test: $(GUI_STAMP)
	bash scripts/system-deps.sh
	$(PY) -m pytest -q -p no:cacheprovider -n $(PYTEST_WORKERS)
	$(MAKE) typecheck
	@if [ -d clients/java ]; then $(MAKE) java-test; fi

typecheck: $(STAMP)
	$(PY) -m mypy

# The API reference, from the docstrings, into docs/api/ (offline; fails on any pdoc warning).
docs: $(STAMP)
	$(PY) docs/build_api.py docs/api

java-test:
	bash clients/java/build.sh test

# Coverage-guided fuzzing (atheris) of every parser, FUZZ_SECONDS each; see fuzz/README.md.
FUZZ_SECONDS ?= 60
fuzz: $(STAMP)
	$(PY) -m pip install --quiet -e '.[fuzz]' --config-settings editable_mode=lenient
	$(PY) -m fuzz.run --seconds $(FUZZ_SECONDS)

bench: $(STAMP)
	$(PY) -m pip install --quiet -e '.[bench]'
	$(PY) -m bench

clean:
	rm -rf $(VENV) build dist *.egg-info
