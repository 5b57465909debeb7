# Quire's two everyday commands:
#   make run    build the web app and start Quire on its embedded defaults
#   make test   run the whole test suite (Rust, web unit, interop, browser)
# Everything else here is a step of those two.

CARGO ?= cargo
NPM ?= npm

# make cluster: three nodes behind nginx on loopback (docs/operations.md)
.PHONY: run cluster web test lint rust-test web-test interop-test e2e-test e2e-cluster-test build-debug deps services

run: web
	$(CARGO) run --release -p quire-server -- serve

cluster: web
	deploy/local-cluster.sh

# The server embeds web/dist; a plain `cargo build` works without it and
# serves a page that says how to build the app.
web: web/node_modules/.installed
	$(NPM) --prefix web run build

web/node_modules/.installed: web/package-lock.json
	$(NPM) --prefix web ci --no-audit --no-fund
	touch $@

interop/node_modules/.installed: interop/package-lock.json
	$(NPM) --prefix interop ci --no-audit --no-fund
	touch $@

deps: web/node_modules/.installed interop/node_modules/.installed

build-debug: web
	$(CARGO) build -p quire-server

test: services lint rust-test web-test interop-test e2e-test e2e-cluster-test

# PostgreSQL and Redis, started if installed and down.
services:
	scripts/test-services

lint: deps
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(NPM) --prefix web run check

rust-test: build-debug services
	$(CARGO) nextest run --workspace --no-fail-fast

web-test: web/node_modules/.installed
	$(NPM) --prefix web test

interop-test: build-debug interop/node_modules/.installed
	$(NPM) --prefix interop test

e2e-test: build-debug
	$(NPM) --prefix web run e2e

# The collaboration test again, through nginx in front of three nodes.
e2e-cluster-test: build-debug services
	web/e2e/cluster.sh
