# make demo: install, build the shipped study's forms and validate example returned CRFs.
# make test: install and run the whole test suite (what CI runs).
VENV ?= .venv
PY := $(VENV)/bin/python
OUT ?= out

.PHONY: demo test install sysdeps sysdeps-test bench clean

$(VENV)/.installed: setup.cfg pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

sysdeps:
	scripts/install-system-deps.sh

sysdeps-test:
	scripts/install-system-deps.sh --test

install: sysdeps $(VENV)/.installed

demo: install
	$(PY) build_crf.py check

test: sysdeps-test $(VENV)/.installed
	$(PY) -m pytest

clean:
	rm -rf $(OUT) .pytest_cache
