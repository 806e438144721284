# Two commands for a fresh machine: `make demo` and `make test` (each sets up .venv first).
VENV ?= .venv

.PHONY: setup demo test
setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml scripts/setup.sh
	bash scripts/setup.sh $(VENV)

demo: $(VENV)/.installed
	$(VENV)/bin/seglab demo

test: $(VENV)/.installed
	VENV=$(VENV) bash scripts/test.sh
