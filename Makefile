# Two commands for a new user: `make example` and `make test`. Both create .venv and install.
# bambi 0.21 needs Python >= 3.12: take the first interpreter that really runs and is new enough
# (a pyenv shim named python3.12 may exist without being active, so each candidate is tried).
PYTHON ?= $(shell for p in python3.12 python3.13 $$HOME/.pyenv/versions/3.12*/bin/python3.12 \
	/usr/bin/python3.12 /usr/local/bin/python3.12; do \
	"$$p" -c 'import sys; sys.exit(sys.version_info < (3, 12))' >/dev/null 2>&1 && { echo "$$p"; break; }; \
	done)
VENV := .venv
BIN := $(VENV)/bin

.PHONY: example test test-fast docs lint clean

$(VENV)/.installed: pyproject.toml
	@test -n "$(PYTHON)" || { echo "No Python >= 3.12 found; install python3.12." >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	@touch $@

example: $(VENV)/.installed
	$(BIN)/python examples/konstantopoulos.py

test: $(VENV)/.installed
	$(BIN)/python -m pytest

# Everything but the tests marked slow (MCMC fits, compilation, subprocesses, property-based
# probes): under 30 s.
test-fast: $(VENV)/.installed
	$(BIN)/python -m pytest -m "not slow"

# The documentation: runs the example scripts (their output and figures are what the pages
# show), then builds the HTML with every Sphinx warning an error.
GENERATED := docs/_generated
$(VENV)/.docs-installed: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e ".[test,docs]"
	@touch $@

docs: $(VENV)/.docs-installed
	@mkdir -p $(GENERATED)
	$(BIN)/python examples/konstantopoulos.py --output $(GENERATED) > $(GENERATED)/konstantopoulos.txt
	$(BIN)/python examples/metaregression.py --output $(GENERATED) > $(GENERATED)/metaregression.txt
	$(BIN)/python examples/coming_from.py > $(GENERATED)/coming_from.txt
	$(BIN)/python examples/prior_sensitivity.py --output $(GENERATED) > $(GENERATED)/prior_sensitivity.txt
	$(BIN)/python examples/gallery.py --output $(GENERATED) > $(GENERATED)/gallery.txt
	$(BIN)/sphinx-build -W --keep-going -q -b html docs docs/_build/html
	@echo "Built docs/_build/html/index.html"

lint: $(VENV)/.installed
	$(BIN)/ruff check bambi_meta tests examples
	$(BIN)/ruff format --check bambi_meta tests examples

clean:
	rm -rf $(VENV) examples/output .pytest_cache docs/_build $(GENERATED)
