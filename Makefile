# Two commands on a fresh machine: `make lab` and `make test`. Both create .venv when missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.dolab-installed

.PHONY: lab test unit lessons browser wrangler bench stress clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $(STAMP)

# A browser for the e2e tests: Debian's chromium when present, else Playwright's own download.
browser: $(STAMP)
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 \
		|| $(PY) -m playwright install chromium

# Cloudflare's wrangler, pinned, in .cache/wrangler: tests/test_export.py runs its
# `deploy --dry-run` on an exported project. Without npm that test fails (and says why).
wrangler:
	@if command -v npm >/dev/null 2>&1; then bash tools/install-wrangler.sh; \
	else echo "npm not found: wrangler not installed; tests/test_export.py's wrangler test will fail"; fi

# Jupyter refuses to run as root unless told; containers and CI machines often are root.
lab: $(STAMP)
	$(VENV)/bin/jupyter lab notebooks/ $$( [ "$$(id -u)" = 0 ] && echo --allow-root )

test: $(STAMP) browser wrangler
	$(PY) -m pytest tests notebooks --nbval --nbval-current-env --nbval-sanitize-with notebooks/sanitize.cfg

unit: $(STAMP)
	$(PY) -m pytest tests -m "not browser"

lessons: $(STAMP)
	$(PY) -m pytest notebooks --nbval --nbval-current-env --nbval-sanitize-with notebooks/sanitize.cfg

# Benchmarks print Markdown tables and TARGET … PASS/FAIL lines (bench/RESULTS.md has the latest).
# `make bench BENCH_ARGS=--quick` runs smaller sizes.
BENCH_ARGS ?=
bench: $(STAMP)
	@for b in bench/bench_*.py; do echo "== $$b"; $(PY) $$b $(BENCH_ARGS) || exit 1; done

stress: $(STAMP)
	DOLAB_STRESS_TRIALS=100 $(PY) -m pytest tests/stress -q

clean:
	rm -rf $(VENV) .dolab .pytest_cache test-output
