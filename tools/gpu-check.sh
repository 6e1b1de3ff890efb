#!/usr/bin/env bash
# `make gpu-check`: on a machine with an NVIDIA GPU, check the CUDA backend
# and measure it, in about 8 minutes (at most the sum of the timeouts):
#   1. go test ./gpu/cuda: every kernel compiles, every op matches the CPU
#      backend, a few training steps of the tiny preset match the CPU's
#      losses;
#   2. speed figures (TestDeviceFigures): full fine-tune and LoRA steps in
#      tokens/s with model FLOPs utilisation, and generation tokens/s, for
#      gpt2-124m, llama-1b and gemma3-270m (LLMLAB_CUDA_BENCH_PRESETS
#      overrides), with the peak device memory of each;
#   3. the PyTorch anchor (tools/bench/torch_cuda.py): the same rows (the
#      plan TestDeviceFigures writes) in PyTorch + transformers + peft on
#      the same GPU in the same run, and the ratios llmlab/PyTorch per
#      figure (tokens/s, peak device memory);
#   4. `llmlab bench --device cuda` on gpt2-124m;
#   5. where transformers is installed, the model-family golden files
#      (core/model/testdata/golden/families) checked against transformers'
#      own models (tools/golden/families_transformers.py);
#   6. where a Vulkan driver is found (the loader, libvulkan1, beside the
#      NVIDIA driver), `llmlab devices` and the Vulkan backend's train and
#      generate figures on gpt2-124m beside the CUDA backend's, with the
#      ratios (issue goals: train >= 0.5x, decode >= 0.7x CUDA).
# A summary is printed at the end. PYTHON names the interpreter with
# PyTorch (default python3); without one the anchor is skipped. Needs Go, the NVIDIA driver, cuBLAS and
# NVRTC (the CUDA toolkit, or its pip wheels on LD_LIBRARY_PATH). On a GPU
# machine without Go, build the two binaries elsewhere and name them:
#   go test -c -o cuda.test ./gpu/cuda && CGO_ENABLED=0 go build -tags nogui -o llmlab .
#   CUDA_TEST_BIN=./cuda.test LLMLAB_BIN=./llmlab tools/gpu-check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
# GPU_CHECK_OUT keeps the logs and figures in that folder; else they go
# to a temporary one, removed at exit.
if [ -n "${GPU_CHECK_OUT:-}" ]; then
	out=$GPU_CHECK_OUT
	mkdir -p "$out"
else
	out=$(mktemp -d)
	trap 'rm -rf "$out"' EXIT
fi

if ! command -v nvidia-smi >/dev/null 2>&1 && [ ! -e /dev/nvidiactl ]; then
	echo "gpu-check: no NVIDIA GPU here (no nvidia-smi, no /dev/nvidiactl)" >&2
	exit 1
fi
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || true

PY=${PYTHON:-python3}
# cuBLAS and NVRTC often sit in the toolkit's folder, off the loader path,
# or in the nvidia pip wheels beside PyTorch.
for d in "${CUDA_HOME:-}" /usr/local/cuda; do
	if [ -n "$d" ] && [ -d "$d/lib64" ]; then
		export LD_LIBRARY_PATH="$d/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
	fi
done
wheels=$("$PY" -c 'import nvidia, glob, os; print(":".join(d for p in nvidia.__path__ for d in sorted(glob.glob(os.path.join(p, "*", "lib"))) if glob.glob(os.path.join(d, "libcublas.so*")) + glob.glob(os.path.join(d, "libnvrtc.so*"))))' 2>/dev/null || true)
if [ -n "$wheels" ]; then
	export LD_LIBRARY_PATH="${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}$wheels"
fi

# cudatest SECONDS PATTERN runs the package's tests matching PATTERN,
# through go test or the prebuilt test binary, for at most SECONDS.
cudatest() {
	if [ -n "${CUDA_TEST_BIN:-}" ]; then
		timeout "$1" "$CUDA_TEST_BIN" -test.count=1 -test.v -test.run "$2"
	else
		timeout "$1" "$GO" test -count=1 -v -run "$2" ./gpu/cuda/
	fi
}

status=0
echo "== 1. go test ./gpu/cuda (kernels compile, ops vs CPU, training vs CPU)"
cudatest 200 '^(TestKernelsCompile|TestOpenWithoutDriver|TestBackendOps|TestTF32|TestBF16|TestTrainingMatchesCPU|TestGenerateMatchesCPU)$' >"$out/test.log" 2>&1
rc=$?
# Top-level results, failures at any depth, and the test's own log lines.
grep -E '^(--- |ok|FAIL|PASS)|^\s+--- FAIL|^\s+(backend_test|nvrtc_test)\.go|^\s+cpu  \[' "$out/test.log"
if grep -q -- '--- SKIP: TestBackendOps' "$out/test.log"; then
	echo "gpu-check: the CUDA backend did not open, so nothing ran on the GPU:" >&2
	grep -m1 'no CUDA:' "$out/test.log" >&2
	exit 1
fi
if [ $rc -ne 0 ]; then
	# The figures still run: a failing op falls back to the CPU, which
	# the figures report (Backend.Err).
	echo "gpu-check: the CUDA tests failed (exit $rc); the last lines of their log:" >&2
	tail -40 "$out/test.log" >&2
	status=$rc
fi

echo "== 2. speed figures"
export LLMLAB_CUDA_BENCH=1 LLMLAB_CUDA_BENCH_OUT="$out/figures.txt" LLMLAB_CUDA_BENCH_PLAN="$out/plan.json"
cudatest 240 '^TestDeviceFigures$' >"$out/figures.log" 2>&1
rc=$?
grep -vE '^(=== RUN|--- PASS|PASS|ok)' "$out/figures.log" | grep -v 'figures_test.go' || true
if [ $rc -ne 0 ]; then
	echo "gpu-check: the speed figures failed or ran out of time (exit $rc)" >&2
	status=$rc
fi

echo "== 3. PyTorch anchor (same shapes, same run)"
if [ ! -s "$out/plan.json" ]; then
	echo "(the figures wrote no plan: no anchor)" | tee "$out/anchor.txt"
elif "$PY" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
	PYTHONUNBUFFERED=1 timeout 200 "$PY" tools/bench/torch_cuda.py "$out/plan.json" >"$out/anchor.txt" 2>"$out/anchor.log"
	rc=$?
	cat "$out/anchor.txt"
	if [ $rc -ne 0 ]; then
		echo "gpu-check: the PyTorch anchor failed or ran out of time (exit $rc):" >&2
		tail -5 "$out/anchor.log" >&2
	fi
else
	echo "(no PyTorch with CUDA for $PY: no anchor)" | tee "$out/anchor.txt"
fi
# ratio lines: each "figure PRESET KEY TPS GIB" over the anchor's line of
# the same PRESET and KEY.
awk 'FNR == NR { if ($1 == "anchor") { tps[$2 " " $3] = $4; mem[$2 " " $3] = $5 }; next }
	$1 == "figure" && (($2 " " $3) in tps) && tps[$2 " " $3] > 0 {
		k = $2 " " $3
		m = mem[k] > 0 ? sprintf("%.2fx", $5 / mem[k]) : "-"
		printf "ratio %-10s %-10s llmlab %9.1f tokens/s, PyTorch %9.1f: %6.3fx speed; peak memory %s (%.2f vs %.2f GiB)\n", $2, $3, $4, tps[k], $4 / tps[k], m, $5, mem[k]
	}' "$out/anchor.txt" "$out/figures.txt" 2>/dev/null >"$out/ratios.txt"
cat "$out/ratios.txt"

echo "== 4. llmlab bench --device cuda"
bin=${LLMLAB_BIN:-$out/llmlab}
if [ -n "${LLMLAB_BIN:-}" ] || CGO_ENABLED=0 "$GO" build -tags nogui -o "$bin" . 2>"$out/build.log"; then
	if "$bin" bench -h 2>&1 | grep -q -- '-device'; then
		timeout 90 "$bin" bench --device cuda --only generate --presets gpt2-124m 2>&1 | tee "$out/bench.txt" || status=1
	else
		echo "(llmlab bench does not take --device yet: the figures above are the CUDA ones)" | tee "$out/bench.txt"
	fi
else
	cat "$out/build.log" >&2
	status=1
fi

echo "== 5. model-family goldens vs transformers"
if "$PY" -c 'import transformers' 2>/dev/null; then
	PYTHONUNBUFFERED=1 timeout 120 "$PY" tools/golden/families_transformers.py 2>&1 | grep -v -i warn | tee "$out/families.txt" || status=1
else
	echo "(no transformers for $PY: skipped)" | tee "$out/families.txt"
fi

echo "== 6. Vulkan beside CUDA"
if "$bin" devices 2>/dev/null | grep -qE '^[ *] +vulkan +yes'; then
	"$bin" devices 2>&1 | grep -E 'vulkan' | tee "$out/vulkan.txt"
	for dev in cuda vulkan; do
		for g in generate train; do
			timeout "${GPU_CHECK_VULKAN_TIMEOUT:-90}" "$bin" bench --device $dev --only $g --presets gpt2-124m --json 2>/dev/null |
				grep '"tokens_per_s"' | sed "s/^/$dev $g /" >>"$out/vulkan.txt"
		done
	done
	awk '{ split($0, a, "\"tokens_per_s\":"); split(a[2], b, /[,}]/); tps[$1 " " $2] = b[1] }
		END { for (g in tps) if (g ~ /^vulkan/) { sub(/^vulkan /, "", g); c = tps["cuda " g]; v = tps["vulkan " g]
			if (c > 0) printf "vulkan %-8s gpt2-124m  vulkan %9.1f tokens/s, cuda %9.1f: %.3fx\n", g, v, c, v / c } }' "$out/vulkan.txt" | tee -a "$out/vulkan.txt"
else
	echo "(no Vulkan device: skipped)" | tee "$out/vulkan.txt"
fi

echo
echo "== gpu-check summary"
grep -E '^(ok|FAIL|PASS)' "$out/test.log" | sed 's/^/tests: /'
cat "$out/figures.txt" 2>/dev/null || echo "figures: none"
cat "$out/ratios.txt" 2>/dev/null
grep -E 'tokens/s|does not take' "$out/bench.txt" 2>/dev/null | sed 's/^/bench: /'
grep -E '^families vs' "$out/families.txt" 2>/dev/null
grep -E '^vulkan (train|generate)' "$out/vulkan.txt" 2>/dev/null
exit $status
