# llmlab build and test entry points. `make test` is what CI runs.
GO ?= go
WASMEXEC := $(shell $(GO) env GOROOT)/lib/wasm

.PHONY: build test test-short test-wasm demo golden bench clean

build:
	$(GO) build -o bin/llmlab .

# The full suite: native tests, then the core packages under js/wasm (Node).
test:
	$(GO) vet ./...
	$(GO) test ./...
	$(MAKE) test-wasm

test-short:
	$(GO) test -short ./...

test-wasm:
	PATH="$(WASMEXEC):$$PATH" GOOS=js GOARCH=wasm $(GO) test ./core/...

# The main job on the embedded demo model and data.
demo: build
	./bin/llmlab demo

# Regenerate golden files (needs python3-torch, python3-numpy; not in CI).
PYTHON ?= /usr/bin/python3

golden:
	$(PYTHON) tools/golden/gen.py

bench: build
	./bin/llmlab bench

clean:
	rm -rf bin
