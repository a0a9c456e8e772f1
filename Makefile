# expressiond — the two commands of the README:
#   make demo   set everything up and show the daemon working on its bundled sample input
#   make test   set everything up and run every test (ruff + pytest, all tiers)
# Both work from a fresh clone on Debian 12 as root: they install what is missing.

SHELL := /bin/bash
# The Python that makes .venv (development, tests, `make demo`): `python3` from PATH unless
# given (`make PYTHON=/usr/bin/python3.11 setup`). On a fresh Debian 12 that is
# /usr/bin/python3 (3.11.2); where a pyenv shim comes first in PATH it is pyenv's (3.11.7 on
# the build boxes). It must be >= 3.10 with venv and ensurepip (Debian: python3-venv);
# `make setup` says which one it is. The installed service (make install) uses SERVICE_PYTHON,
# the system's: the unit's ProtectHome=yes hides interpreters under /root and /home
# (systemd/install.sh refuses those); the system tests' container uses /usr/bin/python3 too.
PYTHON ?= python3
SERVICE_PYTHON ?= /usr/bin/python3
VENV := .venv
PY := $(VENV)/bin/python
EXPRESSIOND := $(VENV)/bin/expressiond
STAMPS := .stamps
MODELS_DIR := models/ir
export EXPRESSIOND_MODELS := $(CURDIR)/$(MODELS_DIR)

# Debian 12 packages, checked at every `make setup` after a change of this Makefile and
# installed as root when missing (one `apt-get update` first). Who needs what:
#   python3 python3-venv    .venv when PYTHON is the system one; the service's venv
#                           (install.sh); the system tests' container and wheelhouse
#   python3-dev gcc pkg-config libsystemd-dev
#                           systemd-python (the "systemd" extra) compiles from source
#   mosquitto mosquitto-clients
#                           integration, fault and system tests, make demo (mosquitto,
#                           mosquitto_passwd, mosquitto_pub/_sub inside the container)
#   openssl                 TLS certificates of the integration tests; tests/golden/record.sh
#   ffmpeg                  test clips of the capture and camera-fault tests
#   systemd-container util-linux
#                           the system tier: systemd-nspawn; unshare, nsenter (and taskset
#                           for `expressiond benchmark --cpus`, mount for the tmpfs tests)
#   libusb-1.0-0            the NCS2's transport (OpenVINO 2022.3 MYRIAD); a system test
#                           initialises it under the unit's hardening
#   ca-certificates         TLS to the package registries (npm, pip)
#   python3-gst-1.0 gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base
#   gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly
#                           the tests' real RTSP server (tests/rtsp/rtsp_server.py, run by the
#                           system python3): decodebin/appsrc (base), avidemux, jpegdec and
#                           rtph264pay (good), x264enc (ugly)
# plus nodejs and npm unless an npm is already on PATH: `expressiond models build` (npm pack
# of the pinned face-api), the golden references and the face-api benchmark (node >= 18).
APT_PACKAGES := python3 python3-venv python3-dev gcc pkg-config libsystemd-dev \
                mosquitto mosquitto-clients openssl ffmpeg systemd-container util-linux \
                libusb-1.0-0 ca-certificates python3-gst-1.0 gir1.2-gst-rtsp-server-1.0 \
                gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly

# OpenVINO 2022.3 LTS (the last release with MYRIAD) runs only on Python <= 3.10: the unit,
# component and golden tests run a second time there. pyenv's 3.10 is used when present.
PY310 ?= $(shell (pyenv root 2>/dev/null || echo /root/.pyenv) | sed 's|$$|/versions/3.10.13/bin/python3.10|')
VENV310 := .venv310

# A missing input (here: Python 3.10 for the OpenVINO 2022.3 run) is a skip on a developer's
# box and an error under CI (CI set to anything but 0/false/no/off), as in tests/needs.py.
define missing_input
case "$${CI,,}" in ""|0|false|no|off) echo "!! skipped: $(1)";; \
  *) echo "error: missing input under CI=$$CI: $(1)" >&2; exit 1;; esac
endef

.PHONY: faults all setup deps venv venv310 models demo test test-py310 lint unit bench profile accuracy soak figures install uninstall clean distclean

all: setup

setup: venv models
	@echo ">> $(VENV) runs $$($(PY) -c 'import sys; print("Python", sys.version.split()[0], "from", getattr(sys, "_base_executable", sys.executable))')"

# Re-checked when this Makefile (and so the list) changes: a box set up before a package was
# added gets it. Order-only for the venv: a re-check does not rebuild .venv.
$(STAMPS)/apt: Makefile
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

# "import sys, venv, ensurepip" fails on a Debian python3 without python3-venv.
PYTHON_OK := import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 10))

$(STAMPS)/venv: pyproject.toml | $(STAMPS)/apt
	@if [ ! -x $(PY) ]; then \
	  exe=$$(command -v "$(PYTHON)") || { echo "error: PYTHON=$(PYTHON) not found: apt-get install python3 python3-venv, or make PYTHON=/path/to/python3.10+" >&2; exit 1; }; \
	  ver=$$("$$exe" -c 'import sys; print(sys.version.split()[0], "from", sys.executable)'); \
	  echo ">> python venv in $(VENV) from PYTHON=$(PYTHON): $$ver"; \
	  "$$exe" -c '$(PYTHON_OK)' 2>/dev/null || { echo "error: $(PYTHON) ($$ver) must be Python >= 3.10 with venv and ensurepip (Debian: apt-get install python3-venv); another one: make PYTHON=/path/to/python3 setup" >&2; exit 1; }; \
	  "$$exe" -m venv $(VENV); \
	else echo ">> python venv in $(VENV) (exists: make distclean to rebuild it)"; fi
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
	    "opencv-python-headless<4.11" "paho-mqtt>=2" "av>=14" "prometheus-client>=0.17" "tomli>=1.1" \
	    pytest hypothesis "jinja2>=3.1"; \
	  $(VENV310)/bin/python -m pip install -q --no-deps -e .; \
	  touch $@; \
	else $(call missing_input,the OpenVINO 2022.3 test run (no Python 3.10 at $(PY310); set PY310=/path/to/python3.10)); fi

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

# The fault suite's rows go to benchmarks/out/ here (a test run leaves the checkout clean);
# `make faults` and `make soak` write the committed benchmarks/faults.json that the README shows.
test: setup venv310 lint
	@mkdir -p benchmarks/out
	@EXPRESSIOND_FAULTS_JSON=$(CURDIR)/benchmarks/out/faults.json $(VENV)/bin/pytest -q -m "not slow" tests
	@echo ">> slow: the 30 s broker outage with a SIGKILL/restart of the publisher; two bridged boxes, the central broker down 20 s; 24 stops on one core"
	@$(VENV)/bin/pytest -q -m slow tests/integration
	@$(MAKE) --no-print-directory test-py310

test-py310: venv310
	@if [ -x $(VENV310)/bin/python ]; then \
	  echo ">> unit, component and golden tests on Python 3.10 + OpenVINO 2022.3"; \
	  $(VENV310)/bin/python -m pytest -q -p no:cacheprovider -m "not slow" tests/unit tests/component tests/golden; \
	else $(call missing_input,the OpenVINO 2022.3 test run (no $(VENV310): make venv310)); fi

# Every benchmark side by side in one run (~15 min on 2 cores): benchmarks/results.json,
# benchmarks/benchmark.png, benchmarks/targets.png; the targets of issues 3 and 9 checked;
# camera decode (benchmarks/decode.py) into benchmarks/decode.json (README: `make figures`).
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
# The fault suite alone (~4 min), its rows into benchmarks/faults.json, then the table.
faults: setup
	@$(VENV)/bin/pytest -q -m "not slow" tests/faults
	@$(PY) benchmarks/fault_table.py

soak: setup
	@EXPRESSIOND_SOAK_SECONDS=600 $(VENV)/bin/pytest -q tests/faults/test_soak.py
	@$(VENV)/bin/pytest -q -m slow tests/faults
	@$(PY) benchmarks/fault_table.py

# Every figure in README.md and benchmarks/README.md (~2-3 min, progress on stderr): re-runs the
# quick ones (classify example, compile times, per-crop cost, spool commit, accuracy) and
# renders make bench, the fault suite and benchmarks/closeup.py from their results files.
figures: setup
	@$(PY) scripts/figures.py

# Install as a systemd service on this machine (see README, "Operating guide").
install: models
	@PYTHON=$(SERVICE_PYTHON) systemd/install.sh --models-from $(MODELS_DIR)

uninstall:
	@systemd/uninstall.sh

clean:
	rm -rf build *.egg-info .pytest_cache .ruff_cache

distclean: clean
	rm -rf $(VENV) $(VENV310) $(STAMPS) $(MODELS_DIR)
