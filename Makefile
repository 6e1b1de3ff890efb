# llmlab build and test entry points. `make test` is what CI runs.
GO ?= go
PYTHON ?= /usr/bin/python3
WASMEXEC := $(shell $(GO) env GOROOT)/lib/wasm

.PHONY: build build-nogui web test test-short test-wasm test-desktop demo align-demo demo-model golden gguf-check bench gpu-check package screenshots icon clean

# The default build has the desktop app (Fyne: cgo and the X11/GL
# development packages, see .ci/run); the first one compiles GLFW's C for
# about 5 minutes, later ones take seconds.
build: web
	$(GO) build -o bin/llmlab .

# The CLI alone, without cgo or Fyne: for servers (no display needed).
build-nogui: web
	CGO_ENABLED=0 $(GO) build -tags nogui -o bin/llmlab-nogui .

# The browser engine: the core compiled to WebAssembly, embedded by the
# next build (assets/web/llmlab.wasm and Go's wasm_exec.js are not committed).
web:
	GOOS=js GOARCH=wasm $(GO) build -trimpath -ldflags=-s -o assets/web/llmlab.wasm ./wasm
	cp "$(WASMEXEC)/wasm_exec.js" assets/web/wasm_exec.js

# The full suite: vet and native tests (without cgo: the desktop app's pages
# are tested on Fyne's test driver), the core packages and the browser
# engine (wasm/) under js/wasm (Node),
# then the desktop binary itself when its build dependencies are there.
# What the CGO-free CLI for other systems is built from (the desktop app
# needs cgo there).
CROSS_PKGS := . ./core/... ./gpu/... ./lora/... ./rlhf/... ./app/cli/... ./app/serve/...

test:
	CGO_ENABLED=0 $(GO) vet -tags nogui ./...
	CGO_ENABLED=0 GOOS=windows GOARCH=amd64 $(GO) vet -tags nogui $(CROSS_PKGS)
	CGO_ENABLED=0 GOOS=darwin GOARCH=arm64 $(GO) vet -tags nogui $(CROSS_PKGS)
	CGO_ENABLED=0 $(GO) test -tags nogui ./...
	$(MAKE) test-wasm
	$(MAKE) test-desktop

test-short:
	CGO_ENABLED=0 $(GO) test -tags nogui -short ./...

# The desktop binary (cgo: Fyne's GLFW) is vetted and built when gcc and
# the X11/GL development headers are installed (.ci/run installs them).
DESKTOP_HEADERS := /usr/include/GL/gl.h /usr/include/X11/Xlib.h /usr/include/X11/Xcursor/Xcursor.h \
	/usr/include/X11/extensions/Xrandr.h /usr/include/X11/extensions/Xinerama.h \
	/usr/include/X11/extensions/XInput2.h /usr/include/X11/extensions/xf86vmode.h
test-desktop:
	@if command -v gcc >/dev/null && ls $(DESKTOP_HEADERS) >/dev/null 2>&1; then \
		echo "vet and build the desktop binary"; $(GO) vet ./app && $(GO) build -o /dev/null . ; \
	else \
		echo "desktop binary not built: it needs gcc libgl1-mesa-dev libxcursor-dev libxrandr-dev libxinerama-dev libxi-dev libxxf86vm-dev"; \
	fi

test-wasm:
	PATH="$(WASMEXEC):$$PATH" GOOS=js GOARCH=wasm $(GO) test ./core/... ./wasm

# The main job: LoRA fine-tune of the embedded demo model on the embedded
# instruction set, with held-out accuracy before and after.
# (the CLI build: it needs no system packages)
demo: build-nogui
	./bin/llmlab-nogui demo

# The alignment methods side by side on the demo model: an SFT policy tuned
# on sloppy demonstrations, then a reward model, DPO, PPO, GRPO (arithmetic
# checker) and RLAIF -> DPO from it, each scored against it (win rate,
# accuracy, chatty answers, KL) into runs/align-demo/summary.md.
align-demo: build-nogui
	./bin/llmlab-nogui demo --align

# Rebuild the embedded demo model from the project's own data (about 15
# minutes on 2 cores): tokenizer, then pretraining, into assets/model.
demo-model: build
	tools/demo/make_demo_model.sh

# Regenerate golden files (needs python3-torch, python3-numpy and
# python3-sentencepiece, and node with npm for the GPT-2 references; not in CI).
golden:
	$(PYTHON) tools/golden/gen.py
	$(PYTHON) tools/golden/families.py
	$(PYTHON) tools/golden/rlhf.py
	$(PYTHON) tools/golden/peft.py
	$(PYTHON) tools/golden/tokenizer/sentencepiece_golden.py
	cd tools/gguf-check && NODE_LLAMA_CPP_SKIP_DOWNLOAD=true npm install --no-audit --no-fund
	$(PYTHON) tools/golden/ggml_quants.py
	$(PYTHON) tools/golden/gguf_llamacpp.py
	$(PYTHON) tools/golden/wasm_gguf.py
	cd tools/golden/tokenizer && npm install --no-audit --no-fund && node gen.mjs

# Each model family's GGUF export run in llama.cpp (node-llama-cpp's
# prebuilt CPU build, from npm): a small model per family is pretrained
# briefly on the demo stories, exported, and its greedy continuation
# compared between llmlab and llama.cpp (about 4 minutes on 2 cores; needs
# node and npm; not part of `make test`). UPDATE=1 records the models and
# llama.cpp's ids in app/cli/testdata/gguf, which TestGGUFFamiliesLlamaCpp
# checks without node.
gguf-check: build-nogui
	cd tools/gguf-check && NODE_LLAMA_CPP_SKIP_DOWNLOAD=true npm install --omit=optional --no-audit --no-fund
	node tools/gguf-check/families.mjs --llmlab bin/llmlab-nogui $(if $(UPDATE),--update app/cli/testdata/gguf)

bench: build
	./bin/llmlab bench

# On a machine with an NVIDIA GPU: the CUDA backend's tests (every op and a
# few training steps against the CPU backend) and its speed figures
# (tokens/s and MFU for gpt2-124m and llama-1b), in under 8 minutes.
gpu-check:
	GO=$(GO) tools/gpu-check.sh

# The desktop package for Linux: build/llmlab.tar.xz with the binary, a
# .desktop file, the icon and an install Makefile (fyne.io/tools, offline).
# It packages bin/llmlab as built above, so GLFW is compiled once; fyne
# bumps the build number in FyneApp.toml, which is put back afterwards.
FYNE ?= $(shell $(GO) env GOPATH)/bin/fyne
package: build
	test -x "$(FYNE)" || $(GO) install fyne.io/tools/cmd/fyne@v1.7.4
	mkdir -p build && cp FyneApp.toml build/FyneApp.toml.keep
	"$(FYNE)" package --target linux --release --exe bin/llmlab --name llmlab; \
		status=$$?; mv build/FyneApp.toml.keep FyneApp.toml; exit $$status
	mv llmlab.tar.xz build/llmlab.tar.xz
	@echo build/llmlab.tar.xz

# One PNG per page of the desktop app, from a short scripted session under
# Xvfb (needs xvfb and imagemagick), then a check that each is a picture.
SHOTS ?= build/screenshots
screenshots: build
	rm -rf "$(SHOTS)" && mkdir -p "$(SHOTS)"
	LLMLAB_SCREENSHOTS="$(abspath $(SHOTS))" xvfb-run -a -s "-screen 0 1280x800x24" ./bin/llmlab
	LLMLAB_SCREENSHOT_DIR="$(abspath $(SHOTS))" $(GO) test ./app/gui/ -run TestScreenshotFiles -count=1

# The app's icon, drawn by a small program.
icon:
	$(GO) run ./tools/icon -out assets/icon.png

clean:
	rm -rf bin build
