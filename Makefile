# The two set-up commands of the README: `make demo` and `make test`.
# torch is installed first and pinned (the local CPU wheel); the package's own
# torch range is satisfied by it, so pip never pulls another torch.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.asclab-installed

.PHONY: install demo test bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e '.[test,litert]'
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/asclab demo --out demo_out

test: install
	$(BIN)/python -m pytest -q -p no:cacheprovider

bench: install
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf demo_out .pytest_cache
