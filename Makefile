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

# The demo validates planted problems, so validate.py exits 1 (action needed); only 2+ is a failure.
demo: install
	$(PY) build_crf.py check
	$(PY) build_crf.py --out $(OUT) xlsx --site 01 --subjects 01-001..01-014
	$(PY) build_crf.py pdf --out $(OUT)
	$(PY) build_crf.py synth --out $(OUT)/demo --subjects 7 --seed 5 \
		--plant missing-required,dose-deviation,sbp-below-dbp,visit-out-of-window,prohibited-med,attack-count-mismatch --format xlsx
	$(PY) validate.py $(OUT)/demo/returned --today 2026-11-25 --format html --output $(OUT)/demo/report.html; \
		status=$$?; [ $$status -le 1 ] || exit $$status
	$(PY) validate.py $(OUT)/demo/returned --today 2026-11-25 --format xlsx --output $(OUT)/demo/queries.xlsx || true
	rm -f $(OUT)/demo/study.db
	$(PY) validate.py $(OUT)/demo/returned --today 2026-11-25 --store $(OUT)/demo/study.db --received 2026-11-25T09:00 \
		--output $(OUT)/demo/store-run.txt; status=$$?; [ $$status -le 1 ] || exit $$status
	$(PY) validate.py store dashboard --store $(OUT)/demo/study.db --out $(OUT)/demo
	@echo
	@echo "Forms:            $(OUT)/pdf (PDF) and $(OUT)/xlsx (one workbook per subject)"
	@echo "Returned CRFs:    $(OUT)/demo/returned (planted problems: $(OUT)/demo/planted.json)"
	@echo "                  subject 01-005 had two attacks (visits ATT#1, ATT#2) and an unscheduled visit (UNS#1)"
	@echo "Validation report: $(OUT)/demo/report.html ; site query listing: $(OUT)/demo/queries.xlsx"
	@echo "Study store:      $(OUT)/demo/study.db (docs/store.md); dashboard: $(OUT)/demo/dashboard-site-01.html"

test: sysdeps-test $(VENV)/.installed
	$(PY) -m pytest

clean:
	rm -rf $(OUT) .pytest_cache
