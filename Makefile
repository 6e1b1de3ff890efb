# llmlab build and test entry points. `make test` is what CI runs.
GO ?= go
PYTHON ?= /usr/bin/python3
WASMEXEC := $(shell $(GO) env GOROOT)/lib/wasm

.PHONY: build web test test-short test-wasm demo demo-model golden bench clean

build: web
	$(GO) build -o bin/llmlab .

# The browser engine: the core compiled to WebAssembly, embedded by the
# next build (assets/web/llmlab.wasm and Go's wasm_exec.js are not committed).
web:
	GOOS=js GOARCH=wasm $(GO) build -trimpath -ldflags=-s -o assets/web/llmlab.wasm ./wasm
	cp "$(WASMEXEC)/wasm_exec.js" assets/web/wasm_exec.js

# The full suite: vet, native tests, then the core packages under js/wasm (Node).
test:
	$(GO) vet ./...
	$(GO) test ./...
	$(MAKE) test-wasm

test-short:
	$(GO) test -short ./...

test-wasm:
	PATH="$(WASMEXEC):$$PATH" GOOS=js GOARCH=wasm $(GO) test ./core/...

# The main job: LoRA fine-tune of the embedded demo model on the embedded
# instruction set, with held-out accuracy before and after.
demo: build
	./bin/llmlab demo

# Rebuild the embedded demo model from the project's own data (about 15
# minutes on 2 cores): tokenizer, then pretraining, into assets/model.
demo-model: build
	tools/demo/make_demo_model.sh

# Regenerate golden files (needs python3-torch, python3-numpy and
# python3-sentencepiece, and node with npm for the GPT-2 references; not in CI).
golden:
	$(PYTHON) tools/golden/gen.py
	$(PYTHON) tools/golden/rlhf.py
	$(PYTHON) tools/golden/peft.py
	$(PYTHON) tools/golden/tokenizer/sentencepiece_golden.py
	cd tools/golden/tokenizer && npm install --no-audit --no-fund && node gen.mjs

bench: build
	./bin/llmlab bench

clean:
	rm -rf bin build
