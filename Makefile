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
        build server wasm test test-rust test-browser demo clean

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
	wasm-bindgen --target web --out-dir $(WASM_OUT)/web target/$(WASM_TARGET)/release/valet_wasm.wasm
	wasm-bindgen --target bundler --out-dir $(WASM_OUT)/bundler target/$(WASM_TARGET)/release/valet_wasm.wasm

## ---- test -----------------------------------------------------------------
test: setup
	$(MAKE) test-rust
	$(MAKE) test-browser

test-rust:
	cargo test --workspace

test-browser: server wasm setup-npm setup-chromium
	cd tests && npm test

## ---- demo -----------------------------------------------------------------
demo: setup-rust
	cargo build --release -p valet-server
	@echo "Open the demo at http://$(DEMO_ADDR)/ (Ctrl-C stops the server)"
	./target/release/valet-server --dev --addr $(DEMO_ADDR) --db target/valet-dev.db --static-dir www

clean:
	cargo clean
	rm -rf pkg tests/node_modules
