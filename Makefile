# ov_mapping: `make demo` runs the whole graph on the built-in synthetic scene; `make test` runs the test suite.
# Both set up what they need first (scripts/setup_env.sh is idempotent and quick when nothing changed).
VENV ?= $(CURDIR)/.venv
PY := $(VENV)/bin/python
export VENV

.PHONY: setup demo test bench clean
setup:
	@bash scripts/setup_env.sh

demo: setup
	@PYTHONPATH=$(CURDIR) $(PY) -m ov_mapping.tools.cli demo $(ARGS)

test: setup
	@PYTHONPATH=$(CURDIR) $(PY) -m pytest -q test $(ARGS)

# Benchmarks are not tests: each script prints a table and writes JSON under out/.
bench: setup
	@for script in scripts/bench_*.py; do echo "== $$script"; PYTHONPATH=$(CURDIR) $(PY) $$script || exit 1; done

clean:
	rm -rf build out
