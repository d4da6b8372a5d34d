# Two commands do all the set-up: `make demo` (main job) and `make test` (the test suite).
# Both create or reuse the virtual environment in $(VENV) and install what is missing.

VENV    ?= .venv
PYTHON  ?= python3
PY      := $(VENV)/bin/python
OCRTUNE := $(VENV)/bin/ocrtune
STAMP   := $(VENV)/.ocrtune-installed
# Pinned for the set-up only (the package itself keeps normal ranges): the one torch/torchvision
# pair whose torchvision imports on the development machines, both installed from local disk.
TORCH_PINS ?= torch==2.14.1 torchvision==0.29.1
PYTEST_ARGS ?=

.PHONY: demo test install bench clean-venv

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q $(TORCH_PINS)
	$(PY) -m pip install -q -e ".[dev]" $(TORCH_PINS)
	touch $(STAMP)

# Trains the CPU preset on the embedded synthetic receipts (built once, cached) and prints real
# CLEval scores; then a small real learning-rate sweep (6 trials of 5 epochs, two at a time)
# that ends in its report: runs/sweeps/demo-lr/report/. About 9 minutes on 2 cores in all.
demo: $(STAMP)
	$(OCRTUNE) presets list
	$(OCRTUNE) compare baseline run8
	$(OCRTUNE) train --preset cpu-demo --name demo
	$(OCRTUNE) runs list
	$(OCRTUNE) sweep --preset cpu-demo --range 5e-4,8e-3 --points 3 --stages 2 --epochs 5 \
		--min-improvement 0 --parallel 2 --name demo-lr

test: $(STAMP)
	$(PY) -m pytest -q -n 2 --dist loadgroup $(PYTEST_ARGS)

# Every bench script but the recipe on SROIE (hours on a CPU, and it needs --work: docs/quality.md).
LONG_BENCH := bench/bench_recipe_sroie.py

bench: $(STAMP)
	for b in $(filter-out $(LONG_BENCH),$(wildcard bench/bench_*.py)); do echo "== $$b"; $(PY) $$b || exit 1; done

clean-venv:
	rm -rf $(VENV)
