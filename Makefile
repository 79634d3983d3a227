# valet-sdk: every entry point. `make demo` and `make test` do their own
# set-up, idempotently (a second run installs nothing).
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
export PATH := $(HOME)/.cargo/bin:$(PATH)

# wasm-bindgen-cli must match the wasm-bindgen crate in Cargo.lock exactly.
WASM_BINDGEN_VERSION := $(shell awk '/^name = "wasm-bindgen"$$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)
WASM_TARGET := wasm32-unknown-unknown
WASM_OUT := target/wasm
DEMO_ADDR ?= 127.0.0.1:8787

.PHONY: all setup setup-rust setup-wasm-bindgen setup-chromium setup-npm \
        build server wasm pkg demo-site size bench test test-rust test-wasm test-types test-browser lint demo clean

all: test

## ---- set-up ---------------------------------------------------------------
setup: setup-rust setup-wasm-bindgen setup-chromium setup-npm

setup-rust:
	@rustup target list --installed | grep -qx '$(WASM_TARGET)' || rustup target add $(WASM_TARGET)

setup-wasm-bindgen:
	@if [ "$$(wasm-bindgen --version 2>/dev/null)" != "wasm-bindgen $(WASM_BINDGEN_VERSION)" ]; then \
	  echo "installing wasm-bindgen-cli $(WASM_BINDGEN_VERSION)"; \
	  cargo install wasm-bindgen-cli --version $(WASM_BINDGEN_VERSION) --force; \
	fi

setup-chromium:
	@if ! [ -x /usr/bin/chromium ] || ! [ -x /usr/bin/chromedriver ]; then \
	  echo "installing Debian chromium and chromium-driver"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; \
	fi

setup-npm: tests/node_modules/.package-lock.json

tests/node_modules/.package-lock.json: tests/package.json tests/package-lock.json
	cd tests && npm ci --no-audit --no-fund
	@touch $@

## ---- build ----------------------------------------------------------------
build: server wasm

server:
	cargo build -p valet-server

wasm: setup-rust setup-wasm-bindgen
	cargo build --release --target $(WASM_TARGET) -p valet-wasm
	wasm-bindgen --target web --remove-name-section --remove-producers-section --out-dir $(WASM_OUT)/web target/$(WASM_TARGET)/release/valet_wasm.wasm
	wasm-bindgen --target bundler --remove-name-section --remove-producers-section --out-dir $(WASM_OUT)/bundler target/$(WASM_TARGET)/release/valet_wasm.wasm

# The npm package: pkg-template/ plus both builds, version from Cargo.
pkg: wasm
	rm -rf pkg && mkdir -p pkg
	cp -r pkg-template/. pkg/
	cp -r $(WASM_OUT)/bundler pkg/bundler
	cp -r $(WASM_OUT)/web/. pkg/web/
	rm -f pkg/bundler/.gitignore pkg/web/.gitignore
	node -e 'const f="pkg/package.json",p=JSON.parse(require("fs").readFileSync(f));p.version=process.argv[1];require("fs").writeFileSync(f,JSON.stringify(p,null,2)+"\n")' \
	  "$$(cargo metadata --format-version 1 --no-deps | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).packages.find(p=>p.name==="valet-wasm").version))')"
	@echo "built pkg/ ($$(node -p 'require("./pkg/package.json").name+"@"+require("./pkg/package.json").version'))"

# Shipped size of the no-bundler build (a benchmark figure, not a test).
size: wasm
	@for f in $(WASM_OUT)/web/valet_wasm_bg.wasm $(WASM_OUT)/web/valet_wasm.js $(WASM_OUT)/web/snippets/*/inline0.js; do \
	  printf "%-48s %8d bytes  %8d gzipped\n" "$$f" "$$(stat -c %s $$f)" "$$(gzip -9c $$f | wc -c)"; done
	@printf "%-48s %8s        %8d gzipped\n" "total (wasm + JS glue)" "" \
	  "$$(cat $(WASM_OUT)/web/valet_wasm_bg.wasm | gzip -9c | wc -c | xargs -I{} sh -c 'echo $$(( {} + $$(gzip -9c $(WASM_OUT)/web/valet_wasm.js | wc -c) + $$(cat $(WASM_OUT)/web/snippets/*/inline0.js | gzip -9c | wc -c) ))')"

## ---- bench ----------------------------------------------------------------
bench: wasm setup-npm setup-chromium size
	cargo run -q --release -p valet-server --example load -- 2000 5
	cargo run -q --release --example throughput -p valet-core
	cd tests && node bench/delivery.mjs
	cd tests && node bench/takeover.mjs

## ---- test -----------------------------------------------------------------
test: setup
	$(MAKE) test-rust
	$(MAKE) test-wasm
	$(MAKE) test-types
	$(MAKE) test-browser

test-rust:
	cargo test --workspace

# The seed quickstart type-checks with tsc --strict against the generated typings.
# The glue's own tests, in headless Chromium (wasm-bindgen-test).
test-wasm: setup-rust setup-wasm-bindgen setup-chromium
	CHROMEDRIVER=/usr/bin/chromedriver WASM_BINDGEN_TEST_TIMEOUT=120 cargo test --target $(WASM_TARGET) -p valet-wasm

test-types: pkg setup-npm
	cd tests && npx tsc -p types/tsconfig.json

test-browser: server wasm demo-site setup-npm setup-chromium
	cd tests && npm test

lint: setup-rust
	cargo clippy --workspace --all-targets -- -D warnings
	cargo clippy --target $(WASM_TARGET) -p valet-wasm --all-targets -- -D warnings

## ---- demo -----------------------------------------------------------------
# The demo page and the no-bundler SDK build, served next to the API.
demo-site: pkg
	rm -rf target/demo && mkdir -p target/demo
	cp -r www/. target/demo/
	cp -r pkg/web target/demo/sdk

demo: setup-rust demo-site
	cargo build --release -p valet-server
	@echo "Open the demo at http://$(DEMO_ADDR)/ (Ctrl-C stops the server)"
	./target/release/valet-server --dev --addr $(DEMO_ADDR) --db target/valet-dev.db --static-dir target/demo

clean:
	cargo clean
	rm -rf pkg tests/node_modules
