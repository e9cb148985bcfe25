# The front door. `make` (or `make help`) lists every target. Recipes stay one line: the work lives in
# ops/ scripts and `python -m` entry points.
.DEFAULT_GOAL := help
SHELL := /usr/bin/env bash

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
COMPOSE := ops/compose.sh
# no default: make psql opens psql as postgres without it, make rotate-password refuses to guess
ROLE ?=
BACKUP ?= latest
# the age private key file that decrypts offsite copies: read for one command, never kept in the stack
AGE_KEY ?=
SOURCE_DB ?=
TARGET_DB ?=
# reader-role: the admin connection to your own database (a libpq URI or DSN); schemas the reader reads
ADMIN_URL ?=
SCHEMAS ?=
FORCE ?=
BACKUPS ?=
CA ?=
# external: where your own PostgreSQL is (a libpq URI without user or password), and the role make restore uses there
URL ?=
ADMIN_USER ?= postgres
# api-key: the new key's name, what it may call (tools or OAuth scopes), a lower row limit, when it expires
NAME ?=
SCOPES ?=
MAX_ROWS ?=
EXPIRES ?=
MAJOR ?=
PYTEST_ARGS ?=
LOAD_ARGS ?=

.PHONY: help up down ps logs psql clean venv lock lint test test-fast test-stack \
	backup-now backups scrub restore restore-drill drills verify-offsite drill-offsite upgrade upgrade-postgres rollback version rotate-password api-key api-keys api-key-revoke reader-role rotate-tls external bundled bench bench-scale bench-backup mutate load conformance images swarm-up swarm-down

help: ## list every target
	@# the self-documenting pattern of testcontainers-python, fixed to accept '/', '.' and '-' in names
	@grep -hE '^[a-zA-Z0-9_./-]+:.*## ' $(MAKEFILE_LIST) | sort | awk 'BEGIN {FS = ":.*## "}; {printf "  \033[36m%-15s\033[0m %s\n", $$1, $$2}'

up: ## start the stack (installs Docker and builds offline images on a bare Debian machine; PROFILE=scale: replicas, standby, HAProxy; PROFILE=tls: HTTPS through Caddy; PROFILE=monitoring: Prometheus, the alert rules, Alertmanager to the webhook, postgres_exporter)
	ops/up.sh

down: ## stop the stack, keeping its data
	$(COMPOSE) down --remove-orphans

ps: ## show the stack's services and their health
	$(COMPOSE) ps

logs: ## follow the stack's logs (SERVICE=<name> for one)
	$(COMPOSE) logs --tail 100 -f $(SERVICE)

psql: ## open psql in the postgres container (ROLE=postgres|app_owner|mcp_reader|backup_operator)
	ops/psql.sh $(ROLE)

clean: ## remove the stack and its volumes but the backups (asks first; FORCE=1 to skip the question; BACKUPS=1: the backups too)
	FORCE=$(FORCE) BACKUPS=$(BACKUPS) ops/clean.sh

rotate-password: ## give ROLE=<role> (required) a new random password and recreate the service that uses it
	ops/rotate-password.sh $(ROLE)

api-key: venv ## create an API key NAME=<name> [SCOPES=query,explain|pg:read] [SCHEMAS=a,b] [MAX_ROWS=n] [EXPIRES=2027-01-31|90d]; prints it once, keeps its hash
	SCOPES="$(SCOPES)" SCHEMAS="$(SCHEMAS)" MAX_ROWS="$(MAX_ROWS)" EXPIRES="$(EXPIRES)" ops/api-keys.sh create "$(NAME)"

api-keys: venv ## list the API keys: name, state, tools, row limit, expiry, creation, last use
	ops/api-keys.sh list

api-key-revoke: venv ## revoke the API key NAME=<name>: its requests get 401 saying so, no restart
	ops/api-keys.sh revoke "$(NAME)"

# ADMIN_URL may hold a password: make exports it to the command's environment, never to its argv
reader-role: venv ## create the MCP reader and backup roles on your own database: ADMIN_URL=<libpq URI> [FORCE=1] [SCHEMAS=a,b]
	$(PY) -m pgmcp reader-role --schemas "$(SCHEMAS)" $(if $(filter 1,$(FORCE)),--force,)

external: ## serve your own PostgreSQL instead of the bundled one: URL=postgresql://HOST[:PORT]/DB CA=<ca.crt>|system, then make up
	ops/external.sh "$(URL)" "$(CA)" "$(ADMIN_USER)"

bundled: ## back to the bundled postgres after make external (then make up)
	ops/external.sh --off

swarm-up: ## deploy the stack on the Docker Swarm this machine manages (compose/stack.yaml; docs/operations.md)
	ops/swarm.sh up

swarm-down: ## remove the stack from the Swarm, keeping its volumes
	ops/swarm.sh down

rotate-tls: ## give postgres a new TLS certificate from the stack's CA, no downtime (CA=1: a new CA too)
	ops/rotate-tls.sh $(if $(filter 1,$(CA)),--ca,)

images: ## choose the base images and build the offline stand-ins if no registry answers
	ops/images.sh

venv: $(VENV)/.installed ## create the development virtualenv from the lock file

$(VENV)/.installed: requirements/dev.lock services/mcp/pyproject.toml services/backup/pyproject.toml
	ops/venv.sh $(VENV)

lock: ## re-resolve the *.in files into the lock files
	ops/lock.sh

lint: venv ## format check, mypy --strict, ruff and shellcheck
	ops/lint.sh

test: venv ## run both tiers: fast (native PostgreSQL) then stack (Compose); fails if a tier cannot run
	ops/test.sh $(PYTEST_ARGS)

test-fast: venv ## run the fast tier only (no Docker)
	$(PY) -m pytest -m "not stack" $(PYTEST_ARGS)

test-stack: venv ## run the stack tier only (builds and starts its own Compose project)
	ops/docker-engine.sh && ops/images.sh && $(PY) -m pytest -m stack $(PYTEST_ARGS)

backup-now: ## take a backup set now, in the running backup sidecar
	$(COMPOSE) exec -T backup python -m pgbackup backup

backups: ## list backup sets (id, age, size, verdict and last check, databases)
	$(COMPOSE) exec -T backup python -m pgbackup list

scrub: ## re-check every retained backup set now (checksums, archive listings) and record the verdicts
	$(COMPOSE) exec -T backup python -m pgbackup scrub

restore: ## restore SOURCE_DB=<db> (needed when the set holds several) of BACKUP=<id|latest|offsite:id|offsite:latest> (offsite: with AGE_KEY=<key file>) into a new database TARGET_DB=<name> (FORCE=1 to replace one)
	AGE_KEY="$(AGE_KEY)" ops/restore.sh --set "$(BACKUP)" --source-db "$(SOURCE_DB)" --target-db "$(TARGET_DB)" $(if $(filter 1,$(FORCE)),--force,)

verify-offsite: ## download the newest offsite copy (or BACKUP=<id>), decrypt it with AGE_KEY=<key file>, check every checksum
	AGE_KEY="$(AGE_KEY)" ops/verify-offsite.sh --set "$(BACKUP)"

drill-offsite: ## prove the newest offsite copy (or BACKUP=<id>) restores: fetch, decrypt with AGE_KEY=<key file>, then the drill
	AGE_KEY="$(AGE_KEY)" ops/drill-offsite.sh --set "$(BACKUP)"

restore-drill: ## prove the latest backup restores: throwaway server (in memory, or on a scratch volume when too large), verify, RTO/RPO report
	ops/restore-drill.sh --set "$(BACKUP)"

drills: ## list past restore drills (date, set, verdict, RTO, RPO, scratch); the latest with its RTO/RPO trend in reports/drills.md and .html
	ops/drills.sh

upgrade: ## replace the running stack with this checkout's version: verified backup, drill, services one at a time, smoke query (STACK_VERSION=<v> for another)
	ops/upgrade.sh

upgrade-postgres: ## PostgreSQL to its next major release MAJOR=19 with pg_upgrade, the old cluster kept for make rollback (runbooks/upgrade-postgres-major.md)
	ops/upgrade-postgres.sh "$(MAJOR)"

rollback: ## return the running stack to the release before (after a failed upgrade: the last healthy one), with its own images and files
	ops/rollback.sh

version: ## print this checkout's version (the tag of its images) and what the running stack runs
	@echo "this checkout: $$(ops/version.sh)"
	@bash -c 'source ops/lib.sh; source ops/releases.sh; echo "running:       $$(releases_running mcp || echo nothing)"'

bench: venv ## MCP benchmark: tool calls vs raw psycopg, medians and p95 (reports/bench-mcp.json)
	$(PY) -m loadtests.bench_mcp

bench-scale: venv ## MCP_WORKERS=1 vs 2, then 3 and 1 replicas behind HAProxy on the standby or the primary: calls/s at 10 and 50 clients, single-client latency, each vs raw psycopg (reports/bench-scale.json)
	ops/docker-engine.sh && $(PY) -m loadtests.bench_scale

bench-backup: venv ## backup benchmark at 1M orders vs plain pg_dump/pg_restore (reports/)
	$(PY) -m loadtests.bench_backup

mutate: venv ## mutation testing (mutmut) of the guard, function policy, result limits and backup checks; score and survivors in reports/mutate.txt (MUTANTS='pgmcp.guard.*' for some)
	$(PY) -m devtools.mutate $(MUTANTS)

load: venv ## Locust load run against the MCP endpoint, with pass/fail thresholds (reports/)
	$(PY) -m loadtests.load $(LOAD_ARGS)

conformance: venv ## MCP conformance suite (Node 22 from npm) against a server it starts
	ops/conformance.sh
