# Ryax developer entry points. `make help` lists them.
#   make test   set up everything (venv with Node.js, PostgreSQL, RabbitMQ, nginx, Chromium), then
#               lint, type-check, check the architecture contracts and the protobuf copies, check
#               the web UI, and run every test suite (the browser tests included)
#   make demo   set up the same way and run the platform locally under supervisord, the web UI at
#               http://127.0.0.1:8080/ (its state is this checkout's own: `make status` names it,
#               `make reset` drops it)
#   make chaos  faults injected into a platform of its own (private PostgreSQL and RabbitMQ)
#               while runs go on: one row per fault, .dev/chaos/results.json
#   make fuzz   every service's OpenAPI fuzzed with schemathesis, the long form (make test runs
#               a short one): no 5xx, answers as documented, no secret shown, projects kept apart
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-builtin-rules

VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.ryax-installed

# Keep in sync with SERVICES in dev/gen_importlinter.py and dev/platform.py.
SERVICES := authorization repository action-builder studio runner worker action-wrapper cli
# The platform kit (kit/, package ryax_kit): the plumbing every service depends on.
KIT := kit
# Installed (editable) are the kit and the service folders that have a pyproject.toml.
PY_SERVICES := $(strip $(foreach s,$(KIT) $(SERVICES),$(if $(wildcard $(s)/pyproject.toml),$(s))))
PY_PACKAGES := $(strip $(foreach s,$(PY_SERVICES),$(if $(wildcard $(s)/ryax_$(subst -,_,$(s))/__init__.py),$(s)/ryax_$(subst -,_,$(s)))))
LINT_PATHS := $(wildcard $(KIT) $(SERVICES) proto-registry tests dev bench conftest.py)
# tests/fuzz (the services in process, on free ports) before tests/e2e; tests/chaos and
# tests/webui after tests/e2e: they use the platform's fixed ports (one folder at a time).
TEST_DIRS := $(wildcard $(KIT)/tests $(SERVICES:%=%/tests) proto-registry/tests tests/contract tests/fuzz tests/e2e tests/webui tests/chaos dev/tests bench/tests)
# Typed developer tooling. dev/platform.py is checked on its own: passed with the others, mypy
# would resolve the standard library's `platform` to it.
DEV_TYPED := conftest.py dev/devlib.py dev/gen_importlinter.py dev/chaos.py
comma := ,
empty :=
space := $(empty) $(empty)

.PHONY: help venv deps webui-deps test lint format typecheck lint-imports protos protos-check \
	webui webui-build pytest demo down status reset logs clean bench profile chaos fuzz

help:
	@echo "make test          set up (venv, PostgreSQL, RabbitMQ, nginx, Chromium) and run every check and test suite"
	@echo "make demo          set up and start the platform and its web UI under supervisord (then: status, down)"
	@echo "make status        state and health of each platform program"
	@echo "make bench         benchmarks vs Prefect 3 and Celery, against the running platform (make demo first; BENCH_ARGS='--runs 20 --only chain')"
	@echo "make profile       where a one-step run's time goes: py-spy on the runner and the worker under load (make demo first; root)"
	@echo "make chaos         faults (kill -9, broker and database restarts, a worker's network cut, poison outputs) during runs, on a"
	@echo "                   platform of its own; about 10 minutes (CHAOS_ARGS='--only kill-worker --runs 50')"
	@echo "make fuzz          every service's OpenAPI fuzzed (schemathesis), 200 examples per operation and a"
	@echo "                   random seed; 3 to 5 minutes (FUZZ_EXAMPLES=1000); stats: .dev/fuzz-stats.json"
	@echo "make down          stop the platform (PostgreSQL and RabbitMQ keep running)"
	@echo "make reset         stop the platform, drop this checkout's databases and vhost, remove .dev/data"
	@echo "make venv          create/update .venv (services editable + dev/requirements-dev.txt)"
	@echo "make deps          make sure PostgreSQL, RabbitMQ and a private Slurm run; writes .dev/env"
	@echo "make webui-deps    make sure nginx (serves the web UI) and Chromium (browser tests) are installed"
	@echo "make lint          ruff check + ruff format --check"
	@echo "make format        ruff format + ruff check --fix"
	@echo "make typecheck     mypy, one run per service package, then dev/ and bench/"
	@echo "make lint-imports  architecture contracts (.importlinter, generated)"
	@echo "make protos        regenerate every service's protobuf copies"
	@echo "make protos-check  check every service's protobuf copies are current"
	@echo "make webui         web UI checks: npm ci, lint, typecheck, Vitest, API client vs OpenAPI"
	@echo "make webui-build   build the web UI into webui/dist (when its sources changed)"
	@echo "make pytest        the test suites only, one pytest per folder"
	@echo "                   (TESTS='runner/tests dev/tests' PYTEST_ARGS='-k name -x' to narrow)"
	@echo "Services found: $(or $(PY_SERVICES),none yet)"

# ---------------------------------------------------------------------------- set-up

venv: $(STAMP)

$(STAMP): dev/requirements-dev.txt $(PY_SERVICES:%=%/pyproject.toml) dev/ensure-venv.sh
	@bash dev/ensure-venv.sh $(PY_SERVICES)

deps: venv
	@bash dev/ensure-postgres.sh
	@bash dev/ensure-rabbitmq.sh
	@bash dev/ensure-bubblewrap.sh
	@bash dev/ensure-slurm.sh

# nginx serves the web UI in `make demo` (and for the e2e tests); Chromium runs tests/webui.
webui-deps:
	@bash dev/ensure-nginx.sh
	@bash dev/ensure-chromium.sh

# ---------------------------------------------------------------------------- checks

test: venv deps webui-deps
	@bash dev/run-checks.sh lint typecheck lint-imports protos-check webui pytest

lint: venv
	$(VENV)/bin/ruff check --force-exclude $(LINT_PATHS)
	$(VENV)/bin/ruff format --check --force-exclude $(LINT_PATHS)

format: venv
	$(VENV)/bin/ruff format --force-exclude $(LINT_PATHS)
	$(VENV)/bin/ruff check --fix --force-exclude $(LINT_PATHS)

typecheck: venv
	@rc=0; \
	for package in $(PY_PACKAGES); do \
		echo "mypy $$package"; \
		$(VENV)/bin/mypy --config-file pyproject.toml "$$package" || rc=1; \
	done; \
	echo "mypy $(DEV_TYPED)"; \
	$(VENV)/bin/mypy --config-file pyproject.toml $(DEV_TYPED) || rc=1; \
	echo "mypy dev/platform.py"; \
	$(VENV)/bin/mypy --config-file pyproject.toml dev/platform.py || rc=1; \
	echo "mypy bench"; \
	MYPYPATH=worker:cli:runner:runner/tests $(VENV)/bin/mypy --config-file pyproject.toml \
		bench/*.py bench/peers/*.py || rc=1; \
	echo "mypy tests/contract"; \
	MYPYPATH=studio:worker:repository $(VENV)/bin/mypy --config-file pyproject.toml \
		tests/contract || rc=1; \
	exit $$rc

lint-imports: venv
	@$(PY) -P dev/gen_importlinter.py
	@if grep -q '^root_packages' .importlinter; then \
		PYTHONPATH="$(subst $(space),:,$(PY_SERVICES))" $(VENV)/bin/lint-imports --no-logo; \
	else \
		echo "lint-imports: no service package yet"; \
	fi

protos: venv
	$(PY) proto-registry/registry.py generate

protos-check: venv
	@if [ -f proto-registry/registry.py ]; then \
		echo "$(PY) proto-registry/registry.py check"; \
		$(PY) proto-registry/registry.py check; \
	else \
		echo "protos-check: proto-registry/registry.py does not exist yet: skipped"; \
	fi

# The web UI (webui/) with .venv's Node.js and npm: dev/webui.sh says what each step does.
webui: venv
	@bash dev/webui.sh check

webui-build: venv
	@bash dev/webui.sh build

pytest: venv deps
	@bash dev/run-pytest.sh $(or $(TESTS),$(TEST_DIRS))

# ---------------------------------------------------------------------------- platform

demo: venv deps
	@$(PY) -P dev/platform.py up
	@$(PY) -P dev/platform.py scenario

down:
	@if [ -x $(PY) ]; then $(PY) -P dev/platform.py down; else echo "no .venv: nothing runs"; fi

status:
	@if [ -x $(PY) ]; then $(PY) -P dev/platform.py status; else echo "no .venv: nothing runs"; fi

# Start again from nothing: only this checkout's state (databases ryax_<id>_*, vhost ryax_<id>,
# .dev/data); another checkout's is never touched. Secrets and logs in .dev/ are kept.
reset: venv deps
	@$(PY) -P dev/platform.py reset

logs:
	@ls -1 .dev/logs/*.log 2>/dev/null | sed 's/^/  /' || echo "no logs yet (make demo)"

clean:
	rm -rf .mypy_cache .ruff_cache .import_linter_cache .dev/pytest .dev/pytest-summary

# Benchmarks against the running platform (`make demo` first); peers get their own venvs in
# .dev/bench, never .venv. Results: .dev/bench/{bench.txt,results.json,bench.png}.
bench: venv deps
	$(PY) bench/run.py $(BENCH_ARGS)

# Where a one-step run's time goes, sampled by py-spy in the runner and the worker under load
# (root; the running platform). Results: .dev/bench/profile/{profile.txt,runner.txt,worker.txt}.
profile: venv
	$(PY) bench/profile_hops.py $(PROFILE_ARGS)

# The chaos suite (dev/chaos.py): a private PostgreSQL and RabbitMQ node of its own, the platform
# on them under supervisord (the fixed ports must be free: `make down` first), then each fault
# during a load of runs. Exit 1 when a target is missed. Results: .dev/chaos/results.json.
chaos: venv
	$(PY) -P dev/chaos.py $(CHAOS_ARGS)

# The long form of the OpenAPI fuzzing (tests/fuzz; `make test` runs it with 25 examples per
# operation and a fixed seed): the services in process on free ports, real PostgreSQL and
# RabbitMQ. Statuses and a sample answer per operation: .dev/fuzz-stats.json.
fuzz: venv deps
	RYAX_FUZZ_MAX_EXAMPLES=$(or $(FUZZ_EXAMPLES),200) RYAX_FUZZ_RANDOM=1 \
		RYAX_FUZZ_STATS=$(CURDIR)/.dev/fuzz-stats.json bash dev/run-pytest.sh tests/fuzz
