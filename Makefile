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

.PHONY: all setup deps venv models demo test lint unit clean distclean

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
	@$(PY) -m pip install -q -e '.[dev,systemd]'
	@touch $@

venv: $(STAMPS)/venv

models: venv
	@$(EXPRESSIOND) models build --dir $(MODELS_DIR)

demo: setup
	@$(EXPRESSIOND) classify --models $(MODELS_DIR) --annotate $(MODELS_DIR)/annotated $(MODELS_DIR)/samples/*.jpg

lint: venv
	@$(VENV)/bin/ruff check daemon tests
	@$(VENV)/bin/ruff format --check daemon tests

test: setup
	@$(VENV)/bin/ruff check daemon tests
	@$(VENV)/bin/pytest -q tests

clean:
	rm -rf build *.egg-info .pytest_cache .ruff_cache

distclean: clean
	rm -rf $(VENV) $(STAMPS) $(MODELS_DIR)
