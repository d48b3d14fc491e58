# Tessera: `make run` starts a demo server on SQLite; `make test` runs every check.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: run test lint typecheck contracts pytest schemathesis system-deps postgres bench bench-rebuild bench-webauthn clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	rm -f $(VENV)/.installed-* && touch $(STAMP)

run: $(STAMP)
	$(BIN)/tessera serve --host 127.0.0.1 --port 8000 --demo

# Debian packages the tests use: oathtool (independent OTP generator), chromium (browser tests;
# never `playwright install`). In CI (CI=true) a failed chromium install fails the target.
system-deps:
	@command -v oathtool >/dev/null 2>&1 || { \
	  echo "installing oathtool"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq oathtool) \
	  >/dev/null 2>&1 || echo "could not install oathtool (tests that need it will say so)"; }
	@test -x /usr/bin/chromium || { \
	  echo "installing chromium (Debian's; the admin dashboard's browser test drives it)"; \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) \
	  >/dev/null 2>&1 || { echo "could not install chromium"; test "$$CI" != true; }; }

# Start PostgreSQL where it is installed but not running.
postgres:
	@if command -v pg_isready >/dev/null 2>&1 && ! pg_isready -q -h 127.0.0.1 -p 5432; then \
	  echo "starting PostgreSQL"; \
	  pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql) main start || true; \
	  for i in 1 2 3 4 5 6 7 8 9 10; do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done; \
	fi

lint: $(STAMP)
	$(BIN)/ruff check domain application adapters entrypoints tests bench
	$(BIN)/ruff format --check domain application adapters entrypoints tests bench

typecheck: $(STAMP)
	$(BIN)/mypy --strict domain application adapters entrypoints

contracts: $(STAMP)
	$(BIN)/lint-imports

pytest: $(STAMP) system-deps postgres
	$(BIN)/pytest -q -n 2 --dist loadfile

test: lint typecheck contracts pytest

bench: $(STAMP) postgres
	$(BIN)/python -m bench.verify

# A million events on PostgreSQL, then `tessera projections rebuild` timed (bench/README.md).
bench-rebuild: $(STAMP) postgres
	$(BIN)/python -m bench.rebuild

# WebAuthn assertions per second: the adapter per algorithm, then whole logins on PostgreSQL.
bench-webauthn: $(STAMP) postgres
	$(BIN)/python -m bench.webauthn

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
