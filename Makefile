# ppgen: `make demo` runs the main job, `make test` the tests. Both set up .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-all install clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# A torch that is already installed is kept; otherwise the pinned CPU wheel (an unpinned torch pulls GBs of CUDA).
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/ppgen compare --data digits --quick --out runs/demo-digits
	$(BIN)/ppgen compare --data rings8 --quick --out runs/demo-rings8 --force
	@echo "Reports: runs/demo-digits/report.md and runs/demo-rings8/report.md"

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-all: $(STAMP)
	$(BIN)/python -m pytest -q -m "slow or not slow"

clean:
	rm -rf $(VENV) runs build *.egg-info
