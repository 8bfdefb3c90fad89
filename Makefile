# Two commands matter: `make run` and `make test`. Everything else supports them.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DATA_DIR ?= .appgw-data
# Stamp files make re-runs fast: the venv is rebuilt only when pyproject.toml changes.
STAMP := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: run test lint typecheck pytest clean system-deps waf-rules bench bench-scale differential

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "appgw needs Python 3.11 or newer")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@rm -f $(VENV)/.installed-*
	@touch $@

# WAF gateways need the OWASP Core Rule Set (Debian's modsecurity-crs); without it they are
# refused with a message saying so, and everything else runs.
CRS_RULE := /usr/share/modsecurity-crs/rules/REQUEST-942-APPLICATION-ATTACK-SQLI.conf
waf-rules:
	@test -f $(CRS_RULE) || { \
	  echo "installing Debian's modsecurity-crs (the WAF's rules)"; \
	  SUDO=$$(test "$$(id -u)" = 0 || echo sudo); \
	  { $$SUDO apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq modsecurity-crs >/dev/null; } || \
	  echo "appgw: modsecurity-crs could not be installed; WAF gateways are refused until it is"; }

run: $(STAMP) waf-rules
	$(BIN)/appgw serve --demo --data-dir $(DATA_DIR) $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests

typecheck: $(STAMP)
	$(BIN)/mypy --strict src

# The portal's browser tests drive Debian's Chromium (Playwright's own browser download does
# not work here); the shared-store tests start a throwaway PostgreSQL cluster with the server
# binaries of Debian's postgresql; the WAF's rules are Debian's modsecurity-crs (the OWASP Core
# Rule Set). Each is installed once, only when missing.
system-deps:
	@missing=""; \
	test -x /usr/bin/chromium || missing="$$missing chromium"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	test -f $(CRS_RULE) || missing="$$missing modsecurity-crs"; \
	test -z "$$missing" || { \
	  echo "installing Debian's$$missing for the tests"; \
	  SUDO=$$(test "$$(id -u)" = 0 || echo sudo); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; }

# Three test processes, whole files each (a module's serve fixture starts once): the tests wait
# on real servers more than they compute, so three keep two cores busy (~5 min, not ~10).
pytest: $(STAMP) system-deps
	$(BIN)/pytest -q -n 3 --dist loadfile $(PYTEST_ARGS)

test: lint typecheck pytest

# appgw vs nginx vs HAProxy on this machine (docs/performance.md); not part of `make test`.
# BENCH_QUICK=1, BENCH_CASES=..., BENCH_TARGETS=... narrow it down.
# Not part of `make test`: each takes minutes and wants a quiet machine. `make bench` runs both
# (BENCH_SCALE=0 skips the scale part); docs/performance.md has the method and latest figures.
# bench.py installs the tools it lacks from Debian (nginx-light, haproxy, wrk, openssl,
# nghttp2-client for h2load); BENCH_CASES=h2-small,h2-64k runs just the HTTP/2 cases.
bench: $(STAMP)
	$(BIN)/python bench/bench.py
	@test "$(BENCH_SCALE)" = 0 || $(MAKE) --no-print-directory bench-scale

bench-scale: $(STAMP)
	$(BIN)/python bench/scale.py $(SCALE_ARGS)

# The same hostile requests to nginx, HAProxy and appgw (docs/security.md quotes the table).
differential: $(STAMP)
	$(BIN)/python bench/differential.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
