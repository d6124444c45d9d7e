# The README's two commands. Each builds .venv from nothing on a fresh machine
# (Python 3.11 is all it needs) and does no reinstall when nothing changed.
PYTHON ?= python3.11
VENV ?= .venv
BENCH_VENV ?= .venv-bench
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
# torch first, pinned to the CPU build available offline: an unpinned torch pulls a CUDA build of several GB.
TORCH ?= torch==2.13.0
PYTEST_ARGS ?=

.PHONY: demo test docs bench clean-venv system-deps test-models

demo: $(VENV)/.core-installed
	$(BIN)/brainlid demo

test: $(VENV)/.test-installed
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The documentation site, offline, into docs/_build/html; warnings are errors (a broken cross-reference
# fails). It executes the tutorials (on synthetic data unless BRAINLID_DATA points at real copies).
docs: $(VENV)/.test-installed
	$(BIN)/python -m sphinx -W --keep-going -b html docs docs/_build/html

# System packages of the full test suite (leaderboard tests: a throw-away PostgreSQL server and headless
# Chromium driven through /usr/bin/chromedriver). Installs only what is missing, only as root on Debian/Ubuntu;
# otherwise it says what to install and those tests skip with a reason. Fast no-op when all are present.
SYSTEM_PACKAGES ?= postgresql chromium chromium-driver
system-deps:
	@missing=""; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	command -v chromium >/dev/null 2>&1 || missing="$$missing chromium"; \
	test -x /usr/bin/chromedriver || missing="$$missing chromium-driver"; \
	if [ -z "$$missing" ]; then echo "system-deps: all present"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "system-deps: installing$$missing"; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $$missing \
	  || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $$missing; }; \
	else echo "system-deps: missing$$missing (run as root: apt-get install -y$$missing); their tests will skip"; fi

bench: $(VENV)/.bench-installed
	$(BENCH_VENV)/bin/python -m benchmarks $(BENCH_ARGS)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(VENV)/.torch-installed: $(BIN)/python
	$(PIP) install --quiet "$(TORCH)"
	touch $@

$(VENV)/.core-installed: $(VENV)/.torch-installed pyproject.toml constraints.txt
	$(PIP) install --quiet -c constraints.txt -e .
	touch $@

$(VENV)/.test-installed: $(VENV)/.core-installed
	$(PIP) install --quiet -c constraints.txt -e ".[test,docs]"
	touch $@

# The peers we measure against live in their own environment: dadapy pins numpy<2.
$(VENV)/.bench-installed: $(BENCH_VENV)/.bench-installed
	touch $@
$(BENCH_VENV)/.bench-installed: pyproject.toml
	test -x $(BENCH_VENV)/bin/python || $(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet --upgrade pip "$(TORCH)"
	$(BENCH_VENV)/bin/python -m pip install --quiet -e ".[bench,test]"
	touch $@

# The torchvision / timm / open_clip model adapters, tested for real in their own environment (not in CI:
# PyPI's torchvision does not import beside the CPU torch above, and the pair below is a multi-GB CUDA build
# that runs on the CPU). aarch64: make test-models MODELS_TORCH=torch==2.9.1 MODELS_TORCHVISION=torchvision==0.24.1
MODELS_VENV ?= .venv-models
MODELS_TORCH ?= torch==2.14.1
MODELS_TORCHVISION ?= torchvision==0.29.1
MODELS_PINS ?= timm==1.0.31 open_clip_torch==3.3.0
MODELS_TESTS ?= tests/test_features_models.py tests/test_features_extract.py tests/test_features_pooling.py tests/test_cli_features.py
MODELS_BIN := $(MODELS_VENV)/bin
MODELS_TORCH_STAMP := $(MODELS_VENV)/.torch-$(subst =,,$(MODELS_TORCH))-$(subst =,,$(MODELS_TORCHVISION))

test-models: $(MODELS_VENV)/.models-installed
	$(MODELS_BIN)/python -m pytest -p no:cacheprovider $(MODELS_TESTS) $(PYTEST_ARGS)

$(MODELS_TORCH_STAMP):
	test -x $(MODELS_BIN)/python || $(PYTHON) -m venv $(MODELS_VENV)
	$(MODELS_BIN)/python -m pip install --quiet --upgrade pip
	$(MODELS_BIN)/python -m pip install --quiet "$(MODELS_TORCH)" "$(MODELS_TORCHVISION)"
	rm -f $(MODELS_VENV)/.torch-* $(MODELS_VENV)/.models-installed
	touch $@

# The project's pins, less its torch pin (torch comes from the pair above), plus the adapter libraries'.
$(MODELS_VENV)/.models-installed: $(MODELS_TORCH_STAMP) pyproject.toml constraints.txt
	grep -v '^torch==' constraints.txt > $(MODELS_VENV)/constraints.txt
	printf '%s\n' $(MODELS_PINS) "$(MODELS_TORCH)" "$(MODELS_TORCHVISION)" >> $(MODELS_VENV)/constraints.txt
	$(MODELS_BIN)/python -m pip install --quiet -c $(MODELS_VENV)/constraints.txt -e ".[test,models]"
	touch $@

clean-venv:
	rm -rf $(VENV)
