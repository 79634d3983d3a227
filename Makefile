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
# The size budget of `make test`: wasm + JS glue (+ snippets), gzip -9, in
# bytes. It only goes down: lower it when the SDK gets lighter.
SIZE_BUDGET := 72664
# The long chaos run of `make bench`: seeds (each with both transports) and ms of faults per run.
CHAOS_SEEDS ?= 3
CHAOS_MS ?= 90000
# Simulated sessions of `make bench` (crates/valet-sim).
SIM_SESSIONS ?= 1000000

.PHONY: docs test-docs all setup setup-rust setup-wasm-bindgen setup-chromium setup-npm \
        build server wasm pkg pack setup-examples examples demo-site size bench test test-size test-build test-rust test-wasm test-types test-unit test-package test-browser test-engines setup-engines lint demo clean

all: test

## ---- set-up ---------------------------------------------------------------
setup: setup-rust setup-wasm-bindgen setup-chromium setup-engines setup-npm

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

# The other engines of `make test-engines`: Firefox ESR (driven over WebDriver
# BiDi by puppeteer-core) and WebKitGTK's MiniBrowser with its WebDriver,
# under Xvfb. Debian's packages; nothing downloads a browser.
setup-engines:
	@if ! [ -x /usr/bin/firefox-esr ] || ! [ -x /usr/bin/WebKitWebDriver ] || ! [ -x /usr/bin/Xvfb ]; then \
	  echo "installing Debian firefox-esr, webkit2gtk-driver and xvfb"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq firefox-esr webkit2gtk-driver xvfb; \
	fi

setup-npm: tests/node_modules/.package-lock.json

tests/node_modules/.package-lock.json: tests/package.json tests/package-lock.json
	cd tests && npm ci --no-audit --no-fund
	@touch $@

## ---- build ----------------------------------------------------------------
build: server wasm

# The debug server the browser and package tests run: built as its own
# tests build it (`cargo test -p valet-server` links the same binary with
# the same dependency features), so `make test` compiles it once. A plain
# `cargo build -p valet-server`, or a workspace-wide `cargo test`, unifies
# other features and would compile its dependencies a second time.
server:
	cargo test -p valet-server --no-run

# The wasm: a release build through wasm-bindgen, kept as it comes in
# target/wasm/raw; then the post-link steps of crates/valet-wasm/build/
# (each earns its bytes, docs/size.md; `make test-build` checks them on
# this output): `core`'s panic functions trap at once without storing their
# message's arguments, the formatting code nothing can call traps too, and
# the panic locations in the data are zeroed (traps.mjs: by the names
# wasm-bindgen keeps and wasm-opt drops); the imports the wasm takes from
# its glue and the exports the glue calls get short names in both
# (imports.mjs). Then binaryen's wasm-opt (npm `binaryen`, from
# tests/package-lock.json): -Os; --low-memory-unused, so constant offsets
# fold into loads and stores, assuming no address wraps around below 1024
# (none does: Rust's pointers are real addresses, and its stack is the
# first megabyte); functions with one caller inlined only up to 20 bytes
# (inlined, the big ones compress worse; no slower in `make bench`); not
# traps-never-happen, which would let a panic run on instead of trapping.
# The glue and its snippets are minified (pkg-template/minify.mjs: terser,
# same lock). What is tested, measured and packed is what users download.
# The typings come from a second build with the `typings` feature (tsify's
# declarations; tsify links `std`, so what ships is built without it and is
# `no_std`): pkg-template/typings.mjs checks that both builds declare the
# same API and puts that build's type declarations in the shipped .d.ts.
# Built again only when what it is built from changed (a stamp: the test
# targets each depend on it, and the wasm-opt pass alone takes seconds).
WASM_INPUTS := $(shell find crates/valet-core crates/valet-wasm -name '*.rs' -o -name Cargo.toml -o -name '*.js') \
  Cargo.toml Cargo.lock .cargo/config.toml tests/node_modules/.package-lock.json \
  crates/valet-wasm/build/traps.mjs crates/valet-wasm/build/imports.mjs crates/valet-wasm/build/lazy.mjs pkg-template/typings.mjs pkg-template/minify.mjs Makefile
WASM_OPT := tests/node_modules/.bin/wasm-opt -Os --converge --low-memory-unused --one-caller-inline-max-function-size 20 --strip-target-features
wasm: $(WASM_OUT)/.built

$(WASM_OUT)/.built: $(WASM_INPUTS) | setup-rust setup-wasm-bindgen
	cargo build --target $(WASM_TARGET) -p valet-wasm --features typings
	rm -rf $(WASM_OUT)/typings
	wasm-bindgen --target web --out-dir $(WASM_OUT)/typings target/$(WASM_TARGET)/debug/valet_wasm.wasm
	cargo build --release --target $(WASM_TARGET) -p valet-wasm
	rm -rf $(WASM_OUT)/raw $(WASM_OUT)/web
	wasm-bindgen --target web --remove-producers-section --out-dir $(WASM_OUT)/raw target/$(WASM_TARGET)/release/valet_wasm.wasm
	node crates/valet-wasm/build/lazy.mjs $(WASM_OUT)/raw
	cp -r $(WASM_OUT)/raw $(WASM_OUT)/web
	node crates/valet-wasm/build/traps.mjs $(WASM_OUT)/web
	node crates/valet-wasm/build/imports.mjs $(WASM_OUT)/web
	$(WASM_OPT) $(WASM_OUT)/web/valet_wasm_bg.wasm -o $(WASM_OUT)/web/valet_wasm_bg.wasm
	node pkg-template/typings.mjs $(WASM_OUT)/typings $(WASM_OUT)/web
	node pkg-template/minify.mjs $(WASM_OUT)/web
	touch $@

# The npm package: pkg-template/ (manifest, README, the TypeScript of the
# lazy-loading entry, the store and the React/Vue bindings, compiled here)
# around the wasm-bindgen build in pkg/wasm/; version from Cargo.
pkg: wasm setup-npm
	rm -rf pkg && mkdir -p pkg
	cp pkg-template/package.json pkg/
	node pkg-template/readme.mjs pkg-template/README.md README.md pkg/README.md
	cp LICENSE CHANGELOG.md pkg/
	cp -r $(WASM_OUT)/web pkg/wasm
	rm -f pkg/wasm/.gitignore pkg/wasm/package.json
	tests/node_modules/.bin/tsc -p pkg-template/tsconfig.json
	node -e 'const f="pkg/package.json",p=JSON.parse(require("fs").readFileSync(f));p.version=process.argv[1];require("fs").writeFileSync(f,JSON.stringify(p,null,2)+"\n")' \
	  "$$(cargo metadata --format-version 1 --no-deps | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).packages.find(p=>p.name==="valet-wasm").version))')"
	@echo "built pkg/ ($$(node -p 'require("./pkg/package.json").name+"@"+require("./pkg/package.json").version'))"

# The tarball `npm pack` makes of pkg/: what the examples install.
pack: pkg
	rm -rf target/pack && mkdir -p target/pack
	cd pkg && npm pack --pack-destination ../target/pack --silent >/dev/null
	mv target/pack/valet.red-sdk-*.tgz target/pack/valet-sdk.tgz
	@echo "packed target/pack/valet-sdk.tgz ($$(stat -c %s target/pack/valet-sdk.tgz) bytes)"

# The examples, as users build them: their npm packages from
# examples/package-lock.json, the SDK from the packed tarball, real bundlers.
setup-examples: examples/node_modules/.package-lock.json

examples/node_modules/.package-lock.json: examples/package.json examples/package-lock.json examples/*/package.json
	cd examples && npm ci --no-audit --no-fund
	@touch $@

examples: pack setup-examples
	rm -rf examples/node_modules/@valet.red
	cd examples && npm install --no-save --no-audit --no-fund ../target/pack/valet-sdk.tgz
	cd examples && NEXT_TELEMETRY_DISABLED=1 npm run build
	@node tests/bench/bundle-sizes.mjs

# The size budget (a test: deterministic for a given toolchain).
# The snippets a page loads with the glue; the lazy ones (crates/valet-wasm/build/lazy.mjs:
# loaded only by the apps that use them) are measured on their own by `make size`.
LAZY_JS := idb.js
STARTUP_SNIPPETS = $$(find $(WASM_OUT)/web/snippets -name '*.js' $(foreach f,$(LAZY_JS),! -name $(f)) | sort)

test-size: wasm
	@total=$$(( $$(gzip -9c $(WASM_OUT)/web/valet_wasm_bg.wasm | wc -c) + $$(gzip -9c $(WASM_OUT)/web/valet_wasm.js | wc -c) + $$(cat $(STARTUP_SNIPPETS) | gzip -9c | wc -c) )); \
	if [ $$total -gt $(SIZE_BUDGET) ]; then echo "size budget: wasm + glue is $$total bytes gzipped, over the $(SIZE_BUDGET) budget"; exit 1; fi; \
	echo "size budget: wasm + glue $$total bytes gzipped (budget $(SIZE_BUDGET))"

# Shipped size of the no-bundler build (a benchmark figure, not a test),
# then per entry point of the package, gzip and brotli.
size: pkg
	@for f in $(WASM_OUT)/web/valet_wasm_bg.wasm $(WASM_OUT)/web/valet_wasm.js $$(find $(WASM_OUT)/web/snippets -name '*.js' | sort); do \
	  printf "%-48s %8d bytes  %8d gzipped\n" "$$f" "$$(stat -c %s $$f)" "$$(gzip -9c $$f | wc -c)"; done
	@printf "%-48s %8s        %8d gzipped\n" "total (wasm + JS glue, snippets as one file; not $(LAZY_JS))" "" \
	  "$$(( $$(gzip -9c $(WASM_OUT)/web/valet_wasm_bg.wasm | wc -c) + $$(gzip -9c $(WASM_OUT)/web/valet_wasm.js | wc -c) + $$(cat $(STARTUP_SNIPPETS) | gzip -9c | wc -c) ))"
	@node tests/bench/sizes.mjs

## ---- bench ----------------------------------------------------------------
bench: wasm setup-npm setup-chromium size examples
	cargo run -q --release -p valet-server --example load -- 2000 20 1,16,64,256
	cargo run -q --release --example throughput -p valet-core
	cargo run -q --profile sim -p valet-sim -- $(SIM_SESSIONS)
	cd tests && node bench/delivery.mjs
	cd tests && node bench/first-message.mjs
	cd tests && node bench/startup.mjs
	cd tests && node bench/memory.mjs
	cd tests && node bench/takeover.mjs
	cd tests && node chaos/bench.mjs $(CHAOS_SEEDS) $(CHAOS_MS)

## ---- test -----------------------------------------------------------------
test: setup
	$(MAKE) test-size
	$(MAKE) test-build
	$(MAKE) test-rust
	$(MAKE) test-wasm
	$(MAKE) test-types
	$(MAKE) test-unit
	$(MAKE) test-browser
	$(MAKE) test-engines
	$(MAKE) test-package
	$(MAKE) test-docs

# The post-link steps (crates/valet-wasm/build/): on small modules built for
# the purpose, and on this checkout's own wasm-bindgen output.
test-build: wasm setup-npm
	node --test crates/valet-wasm/build/

# By package, as `server` builds (see there): the server and its tests, then
# the protocol core and the glue natively, then 10,000 simulated sessions of
# the core's tab sessions against the server and browser models
# (crates/valet-sim: optimized, `--profile sim`; a failure names its seeds).
test-rust:
	cargo test -p valet-server
	cargo test -p valet-core -p valet-wasm
	cargo test --profile sim -p valet-sim -- --nocapture

# The seed quickstart type-checks with tsc --strict against the generated typings.
# The glue's own tests (wasm-bindgen-test), in Node: they need a JS engine,
# not a page (the browser suite below covers the glue in Chromium). Run in
# headless Chromium through chromedriver, the runner's page load hung in 3 of
# 8 runs with Chromium 156.0.8078.114. With `std` (wasm-bindgen-test links it):
# what differs without is the panic handler.
test-wasm: setup-rust setup-wasm-bindgen
	WASM_BINDGEN_TEST_TIMEOUT=120 cargo test --target $(WASM_TARGET) -p valet-wasm --features std

# The typings under lib es2022 + dom and under esnext (the Symbol.dispose
# declarations merge with its own); the glue's own JavaScript
# (crates/valet-wasm/js/: tsc with checkJs, strict, and ESLint); then the
# README's snippets, extracted,
# loosely and under the compiler options of Vite's react-ts template
# (strict, noUnusedLocals, noUnusedParameters...), where apps paste them.
test-types: pkg setup-npm
	cd tests && npx tsc -p types/tsconfig.json && npx tsc -p types/tsconfig.esnext.json
	cd tests && npx tsc -p ../crates/valet-wasm/js/tsconfig.json
	tests/node_modules/.bin/eslint -c tests/eslint.config.mjs crates/valet-wasm/js
	cd tests && node types/readme.mjs && npx tsc -p types/readme.tsconfig.json && npx tsc -p types/readme.vite.tsconfig.json

# The store, natively in Node.
test-unit: pkg setup-npm
	cd tests && node --test unit/

# The package from its tarball, in Node: imported and rendered as in SSR,
# the Vue binding in an effect scope, and the SDK itself in Node against the
# reference server; then an app's tests as a React app's usual setup runs
# them, Vitest and Jest with jsdom (examples/jsdom).
test-package: server
	@[ -d examples/node_modules/@valet.red/sdk ] || $(MAKE) examples
	cd examples && node --test --test-concurrency=1 ssr.test.mjs bindings.test.mjs node.test.mjs testing.test.mjs
	cd examples/jsdom && npm test

test-browser: server wasm demo-site examples setup-npm setup-chromium
	cd tests && npm test

# The same SDK in Firefox and WebKit (tests/browser/engines.mjs): the
# quickstart, the multi-tab cases, shared tokens, the mock client and sends
# that survive a reload in both,
# the short chaos run in Firefox.
# What needs Chromium's DevTools (crash, debugger freeze) is skipped there.
ENGINE_TESTS := browser/quickstart.test.mjs browser/tabs.test.mjs browser/tokens.test.mjs browser/mock.test.mjs browser/outbox.test.mjs browser/persist.test.mjs browser/element.test.mjs
test-engines: server wasm setup-npm setup-engines
	cd tests && VALET_BROWSER=firefox node --test --test-concurrency=1 $(ENGINE_TESTS) browser/chaos.test.mjs
	cd tests && VALET_BROWSER=webkit node --test --test-concurrency=1 $(ENGINE_TESTS)

lint: setup-rust
	cargo clippy --workspace --all-targets -- -D warnings
	cargo clippy --target $(WASM_TARGET) -p valet-wasm -- -D warnings
	cargo clippy --target $(WASM_TARGET) -p valet-wasm --all-targets --features typings -- -D warnings

## ---- docs -----------------------------------------------------------------
# The API reference in target/docs/: the npm package from its typings
# (typedoc, pinned in tests/package-lock.json) and the Rust crates (rustdoc).
docs: pkg setup-npm
	rm -rf target/docs && mkdir -p target/docs
	cd tests && npx typedoc --options typedoc.json --logLevel Warn --treatWarningsAsErrors
	RUSTDOCFLAGS="-D warnings" cargo doc -q --no-deps --workspace
	cp -r target/doc target/docs/rust
	cp docs/site/index.html target/docs/
	@echo "API reference: target/docs/index.html"

# `make docs` builds, and its pages have what a user looks for.
test-docs: docs
	@for f in js/classes/index.ValetClient.html js/classes/index.Convo.html js/functions/react.useConvo.html \
	  js/functions/vue.useConvo.html js/functions/store.createConvoStore.html rust/valet_core/index.html \
	  rust/valet_wasm/index.html rust/valet_server/index.html; do \
	  [ -s target/docs/$$f ] || { echo "docs: target/docs/$$f is missing"; exit 1; }; done
	@grep -q "openConvo" target/docs/js/classes/index.ValetClient.html
	@grep -q "events" target/docs/js/classes/index.Convo.html
	@grep -q "Embed a chat with a Valet AI agent" target/docs/js/index.html || { echo "docs: the landing page is not the README"; exit 1; }
	@for m in index store react vue element testing; do grep -q 'tsd-comment' target/docs/js/modules/$$m.html || { echo "docs: module $$m has no description"; exit 1; }; done
	@! grep -rlE 'setErrorClass|initSync|notOpen|resolveConvoSpec|specOpener' target/docs/js || { echo "docs: internal functions are listed as API"; exit 1; }
	@echo "docs: the reference is complete"

## ---- demo -----------------------------------------------------------------
# The demo page and the no-bundler SDK build, served next to the API.
demo-site: pkg
	rm -rf target/demo && mkdir -p target/demo
	cp -r www/. target/demo/
	mkdir -p target/demo/sdk && cp pkg/*.js target/demo/sdk/ && cp -r pkg/wasm target/demo/sdk/wasm

# The server is the debug build the tests run (`server`): after `make test`
# nothing is compiled again, and a demo's load is far below what it serves.
demo: setup-rust demo-site server
	@echo "Open the demo at http://$(DEMO_ADDR)/ (Ctrl-C stops the server)"
	./target/debug/valet-server --dev --addr $(DEMO_ADDR) --db target/valet-dev.db --static-dir target/demo --agent-token-ms 35

clean:
	cargo clean
	rm -rf pkg tests/node_modules examples/node_modules
