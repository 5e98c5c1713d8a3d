# Two commands on a fresh machine: `make run` (the service on embedded SQLite) and `make test`
# (lint, type-check, dependency rule, every test). Both create .venv and install pinned packages.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-every-store fuzz lint unit bench bench-targets mutants clean

$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/sessionmeter serve

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

# tests/browser drive Debian's Chromium (Playwright's own browser download does not work here).
CHROMIUM := /usr/bin/chromium
$(CHROMIUM):
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null 2>&1 || \
	  { apt-get update -qq >/dev/null && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

# Three workers on the machine's two cores, each taking whole test files (a module's servers start
# once): the tests of real server processes mostly wait, so a third worker fills the cores
# (2026-12-06, the whole suite: 14:10 with three, 16:34 with two). (`--dist loadgroup` would
# keep chosen tests together, but pytest-xdist 3.8 cannot mark them on pytest 9.)
PYTEST := $(BIN)/pytest -n 3 --dist loadfile

test: lint $(CHROMIUM)
	$(PYTEST)

# The HTTP and BDD suites on the MongoDB test server too (they leave it out by default: the
# contract suite proves every store); half again as long.
test-every-store: lint $(CHROMIUM)
	SESSIONMETER_TEST_EVERY_STORE=1 $(PYTEST)

# The schemathesis run with five times the suite's examples per operation (tests/http/test_fuzzing.py).
fuzz: $(STAMP)
	SESSIONMETER_FUZZ_EXAMPLES=150 $(BIN)/pytest -m fuzz

# The domain and use cases on the in-memory adapters: seconds, no servers.
unit: $(STAMP)
	$(BIN)/pytest tests/unit

bench: $(STAMP)
	$(BIN)/python benchmarks/ingest.py
	$(BIN)/python benchmarks/cpu_costs.py
	$(BIN)/python benchmarks/charging.py
	$(BIN)/python benchmarks/watch_time_report.py
	$(BIN)/python benchmarks/webhooks.py
	$(BIN)/python benchmarks/seed_fleet.py
	$(BIN)/python benchmarks/rollup.py
	$(BIN)/python benchmarks/kiosk_day.py
	$(BIN)/python benchmarks/reaper.py
	$(BIN)/python benchmarks/reports.py
	$(BIN)/python benchmarks/operating.py

# Issue 15's targets, one benchmark after the other (about 10 minutes): the round whose figures
# README's "Where issue 15's targets stand" gives. Nothing else should run meanwhile.
bench-targets: $(STAMP)
	for storage in sqlite postgresql; do \
		$(BIN)/python benchmarks/ingest.py --storage $$storage --compare-workers --seconds 6 && \
		$(BIN)/python benchmarks/webhooks.py --storage $$storage --compare-workers --seconds 8 && \
		$(BIN)/python benchmarks/cpu_costs.py --storage $$storage --seconds 6 && \
		$(BIN)/python benchmarks/reaper.py --storage $$storage || exit 1; \
	done
	$(BIN)/python benchmarks/seed_fleet.py

# The adapters' atomic steps, as mutmut names their mutants (module.xǁClassǁmethod__mutmut_N or
# module.x_function__mutmut_N; `?` stands for the ǁ): the port methods that must be race-free, and
# the modules their SQL steps moved to (the statements of the lifecycle, of a batch and of a
# settlement, on asyncpg and on sqlite3), with the helpers that hold their lock or guard.
ATOMIC := \
	$(foreach m,add heartbeat sign_of_life _change close _unless_changed time_out_idle \
		pending_charges _select _save _insert,\
		'adapters.*.sessions.x?*SessionRepository?$(m)__mutmut_*') \
	'adapters.sqlalchemy.sessions.x__written_with_charge__mutmut_*' \
	'adapters.sqlalchemy.asyncpg_sessions.x*' \
	'adapters.sqlalchemy.sqlite_sessions.x*' \
	'adapters.sqlalchemy.session_steps.x*' \
	$(foreach m,append _store _insert _counted _stored_before _marks,\
		'adapters.*.events.x?*EventLog?$(m)__mutmut_*') \
	'adapters.mongodb.events.x__in_flight__mutmut_*' \
	'adapters.sqlalchemy.event_batches.x*' \
	'adapters.sqlalchemy.asyncpg_events.x*' \
	'adapters.sqlalchemy.sqlite_events.x*' \
	'adapters.mongodb.event_counting.x*' \
	$(foreach f,finish_dead_track_ends _finish_ends _counted_numbers _written_by _counted _numbering,\
		'adapters.mongodb.livekit.x_$(f)__mutmut_*') \
	'adapters.mongodb.livekit.x?MongoTrackLog?_count__mutmut_*' \
	$(foreach m,settle _settle settle_many _settle_many,\
		'adapters.*.credits.x?*CreditLedger?$(m)__mutmut_*') \
	$(foreach f,_settle_batch _settled finish_due _insert_once,\
		'adapters.*.credits.x_$(f)__mutmut_*') \
	'adapters.sqlalchemy.asyncpg_settlements.x*' \
	'adapters.sqlalchemy.sqlite_settlements.x*' \
	'adapters.mongodb.ledger_turns.x*' \
	'adapters.*.plans.x?*ResourceRegistry?register__mutmut_*' \
	'adapters.*.refused_starts.x?*RefusedStarts?record__mutmut_*' \
	$(foreach m,acquire renew _update,'adapters.*.rollups.x?*RollupLeases?$(m)__mutmut_*') \
	'adapters.sqlalchemy.sqlite_statements.x*' \
	'adapters.sqlalchemy.engine.x_serialise__mutmut_*'
# `make mutants MUTANTS='adapters.sqlalchemy.event_batches.x*'`: some of them only.
MUTANTS ?= $(ATOMIC)

# Mutation testing of those methods against the contract suite ([tool.mutmut] in pyproject.toml):
# every mutant should fail a test. Not part of `make test`: it takes hours. One pytest at
# a time, all on one PostgreSQL and one MongoDB server; the survivors are listed at the end.
mutants: $(STAMP)
	rm -rf mutants
	$(BIN)/python -m tests.with_servers $(BIN)/mutmut run --max-children 1 $(MUTANTS)
	$(BIN)/mutmut results

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache mutants
