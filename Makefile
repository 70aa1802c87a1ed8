# ppgen: `make demo` runs the main job, `make test` the tests, `make lint` the linter. All set up .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-all lint install clean

# torch first: a torch the user's Python already has is kept (the venv then sees the system packages);
# otherwise the pinned CPU wheel torch==2.13.0 (an unpinned torch pulls several GB of CUDA packages).
$(STAMP): pyproject.toml
	test -x $(BIN)/python || { if $(PYTHON) -c "import torch" 2>/dev/null; then $(PYTHON) -m venv --system-site-packages $(VENV); else $(PYTHON) -m venv $(VENV); fi; }
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

# The quick comparison of the demo's models (ppgen/app/demo.py) on each data set, one process per core;
# finished runs are cached ($PPGEN_CACHE, else ~/.cache/ppgen), so a second `make demo` only redraws.
demo: $(STAMP)
	OMP_NUM_THREADS=1 $(BIN)/ppgen compare --data digits --quick --models demo --out runs/demo-digits --force
	OMP_NUM_THREADS=1 $(BIN)/ppgen compare --data rings8 --quick --models demo --out runs/demo-rings8 --force
	@echo "Reports: runs/demo-digits/report.html and runs/demo-rings8/report.html (and report.md beside them)"

# One pytest worker per core (pytest-xdist); each worker runs torch on one thread.
WORKERS ?= auto

test: $(STAMP)
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q -n $(WORKERS) --durations=15

# ruff (configured in pyproject.toml): pyflakes, pycodestyle, isort and bugbear rules, then the formatter's check.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test-all: $(STAMP)
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q -n $(WORKERS) -m "slow or not slow" --durations=30

clean:
	rm -rf $(VENV) runs build *.egg-info
