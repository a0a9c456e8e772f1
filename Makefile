# expressiond — the two commands of the README:
#   make demo   set everything up and show the daemon working on its bundled sample input
#   make test   set everything up and run every test (ruff + pytest, all tiers)
# Both work from a fresh clone on Debian 12 as root: they install what is missing.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
EXPRESSIOND := $(VENV)/bin/expressiond
STAMPS := .stamps
MODELS_DIR := models/ir
export EXPRESSIOND_MODELS := $(CURDIR)/$(MODELS_DIR)

APT_PACKAGES := mosquitto mosquitto-clients libsystemd-dev pkg-config gcc \
                systemd-container python3-systemd ffmpeg

# OpenVINO 2022.3 LTS (the last release with MYRIAD) runs only on Python <= 3.10: the unit,
# component and golden tests run a second time there. pyenv's 3.10 is used when present.
PY310 ?= $(shell (pyenv root 2>/dev/null || echo /root/.pyenv) | sed 's|$$|/versions/3.10.13/bin/python3.10|')
VENV310 := .venv310

.PHONY: all setup deps venv venv310 models demo test test-py310 lint unit bench profile accuracy soak figures install uninstall clean distclean

all: setup

setup: venv models

$(STAMPS)/apt:
	@mkdir -p $(STAMPS)
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if ! command -v npm >/dev/null 2>&1; then missing="$$missing nodejs npm"; fi; \
	if [ -n "$$missing" ]; then \
	  echo ">> apt-get install:$$missing"; \
	  if [ "$$(id -u)" != 0 ]; then echo "error: run as root (or install:$$missing) " >&2; exit 1; fi; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	else echo ">> apt packages present"; fi
	@touch $@

deps: $(STAMPS)/apt

$(STAMPS)/venv: pyproject.toml $(STAMPS)/apt
	@echo ">> python venv in $(VENV)"
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --upgrade pip
	@$(PY) -m pip install -q -e '.[dev,systemd,int8]'
	@touch $@

venv: $(STAMPS)/venv

$(STAMPS)/venv310: pyproject.toml
	@mkdir -p $(STAMPS)
	@if [ -x "$(PY310)" ]; then \
	  echo ">> python 3.10 venv with openvino 2022.3 in $(VENV310)"; \
	  test -x $(VENV310)/bin/python || $(PY310) -m venv $(VENV310); \
	  $(VENV310)/bin/python -m pip install -q --upgrade pip; \
	  $(VENV310)/bin/python -m pip install -q "openvino==2022.3.2" "numpy<2" \
	    "opencv-python-headless<4.11" "paho-mqtt>=2" "tomli>=1.1" pytest hypothesis; \
	  $(VENV310)/bin/python -m pip install -q --no-deps -e .; \
	  touch $@; \
	else echo "!! no Python 3.10 at $(PY310): the OpenVINO 2022.3 test run is skipped"; fi

venv310: $(STAMPS)/venv310

models: venv
	@$(EXPRESSIOND) models build --dir $(MODELS_DIR)

demo: setup
	@echo ">> one photo, one shot: expressiond classify"
	@$(EXPRESSIOND) classify --models $(MODELS_DIR) --annotate $(MODELS_DIR)/annotated $(MODELS_DIR)/samples/sample1.jpg
	@echo ">> the daemon: a private mosquitto, expressiond run on the sample clip, events as they arrive"
	@$(PY) scripts/demo.py --models $(MODELS_DIR)

LINT_PATHS := daemon tests benchmarks scripts

lint: venv
	@$(VENV)/bin/ruff check $(LINT_PATHS)
	@$(VENV)/bin/ruff format --check $(LINT_PATHS)

test: setup venv310 lint
	@$(VENV)/bin/pytest -q -m "not slow" tests
	@echo ">> the 30 s broker outage with a SIGKILL/restart of the publisher (issue contract)"
	@$(VENV)/bin/pytest -q -m slow tests/integration
	@$(MAKE) --no-print-directory test-py310

test-py310: venv310
	@if [ -x $(VENV310)/bin/python ]; then \
	  echo ">> unit, component and golden tests on Python 3.10 + OpenVINO 2022.3"; \
	  $(VENV310)/bin/python -m pytest -q -p no:cacheprovider -m "not slow" tests/unit tests/component tests/golden; \
	else echo "!! skipped: no $(VENV310)"; fi

# Every benchmark side by side in one run (~10 min on 2 cores): benchmarks/results.json,
# benchmarks/benchmark.png, benchmarks/targets.png; the targets of issues 3 and 9 checked.
bench: setup
	@$(PY) benchmarks/bench_all.py --out benchmarks/results.json

# Expression accuracy levers (issue 17), cross-validated on the dev photos in ../shared
# (~4 min): the variant table; benchmarks/accuracy_variants.json
accuracy: setup
	@$(PY) benchmarks/accuracy.py

# Where the end-to-end time goes (py-spy if installed): benchmarks/profile.json
profile: setup
	@$(PY) benchmarks/profile.py --json benchmarks/profile.json

# About 12 minutes: the 10-minute soak, then the long fault variants; prints the table.
soak: setup
	@EXPRESSIOND_SOAK_SECONDS=600 $(VENV)/bin/pytest -q tests/faults/test_soak.py
	@$(VENV)/bin/pytest -q -m slow tests/faults
	@$(PY) benchmarks/fault_table.py

# Regenerate the figures in README.md (accuracy now; speed and faults from their results files).
figures: setup
	@$(PY) scripts/figures.py

# Install as a systemd service on this machine (see README, "Operating guide").
install: models
	@systemd/install.sh --models-from $(MODELS_DIR)

uninstall:
	@systemd/uninstall.sh

clean:
	rm -rf build *.egg-info .pytest_cache .ruff_cache

distclean: clean
	rm -rf $(VENV) $(VENV310) $(STAMPS) $(MODELS_DIR)
