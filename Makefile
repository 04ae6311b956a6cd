# Every target does its own set-up: a virtualenv in .venv with the project installed.
# Python 3.11 or newer: python3 by default, or name one with PY=.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO_DB := var/billing-demo.sqlite
PKI := var/pki
# `make run` uses the development PKI it creates under var/pki (never committed);
# the development portal is its one registered caller, by fingerprint and by its
# certificate, so that a client may name it by any key reference (examples/).
DEV_TRUST := AZERSU_SIGN_KEY=$(PKI)/service.key AZERSU_SIGN_CERT=$(PKI)/service.pem \
	AZERSU_TRUST_CA=$(PKI)/ca.pem \
	AZERSU_TRUSTED_CLIENTS=$$($(BIN)/azersu-statement pki fingerprint $(PKI)/portal.pem) \
	AZERSU_CLIENT_CERTS=$(PKI)/portal.pem

.PHONY: install run test lint bench soak fuzz clean

install: $(VENV)/.installed

$(VENV)/.installed: setup.cfg pyproject.toml
	@$(PY) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "Python 3.11 or newer is needed: make PY=python3.11 ..." >&2; exit 1; }
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

$(DEMO_DB): | $(VENV)/.installed
	$(BIN)/azersu-statement init-demo --db sqlite:///$(DEMO_DB)

$(PKI)/ca.pem: | $(VENV)/.installed
	$(BIN)/azersu-statement pki init --out $(PKI)

run: install $(DEMO_DB) $(PKI)/ca.pem
	$(DEV_TRUST) $(BIN)/azersu-statement serve

test: install
	$(BIN)/python -m pytest

# Load test of the embedded (SQLite) and the production configuration (PostgreSQL billing
# and audit, Redis replay, started by the bench) on 100,000 demo subscribers: concurrency
# 1, 16 and 64, 20 s each; writes bench/results/latest.json with both.
bench: install
	$(BIN)/python bench/load.py

# Ten minutes of each configuration at half the throughput that `make bench` measured;
# fails if either breaks a bound (errors, RSS, audit records, replay store, audit commits
# over 100 ms, p99 from the due time at 3 x p50 or more). Both run whatever the first gave.
# SOAK_RATE=60 sets the rate instead: on a machine whose cores the generator and the client
# share with the server, half the throughput keeps it busy and the p99 measures the CPU queue.
soak: install
	@status=0; \
	$(BIN)/python bench/soak.py --config embedded --duration 600 $(SOAK_RATE:%=--rate %) || status=1; \
	$(BIN)/python bench/soak.py --config production --duration 600 $(SOAK_RATE:%=--rate %) || status=1; \
	exit $$status

# The WS-Security verifier and parser fed with mutated signed messages, longer than in CI.
fuzz: install
	$(BIN)/python bench/fuzz_verifier.py

lint: install
	$(BIN)/ruff check service tests bench examples
	$(BIN)/mypy

clean:
	rm -rf $(VENV) var build *.egg-info .pytest_cache .mypy_cache .ruff_cache
