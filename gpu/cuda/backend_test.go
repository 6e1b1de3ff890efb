//go:build linux && !android

package cuda

import (
	"context"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"llmlab/core/generate"
	"llmlab/core/model"
	"llmlab/core/tensor"
	"llmlab/core/tensor/backendtest"
	"llmlab/gpu/gputest"
)

func openOrSkip(t *testing.T) *Backend {
	t.Helper()
	b, err := Open()
	if err != nil {
		t.Skipf("no CUDA: %v", err)
	}
	t.Cleanup(b.Close)
	t.Logf("%s", b.Name())
	b.checkArgs = argChecker(t, b)
	return b
}

// TestBackendOps checks every op against the CPU backend.
func TestBackendOps(t *testing.T) {
	b := openOrSkip(t)
	// A small bound on dense attention's score buffers, so that the
	// attention cases cover one round, several rounds of sequences (with
	// a shorter last one) and, for the longest, the per-query kernels.
	b.attnBudget = 30000
	backendtest.Run(t, b)
	if err := b.Err(); err != nil {
		t.Fatalf("a device error sent ops to the CPU: %v", err)
	}
	// Every case fits the kernels (attention windows and softcaps too).
	if st := b.Stats(); st.CPUOps != 0 {
		t.Errorf("%d ops ran on the CPU", st.CPUOps)
	}
}

// TestTF32 checks that TF32 products stay near float32 ones.
func TestTF32(t *testing.T) {
	b := openOrSkip(t)
	b.SetTF32(true)
	defer b.SetTF32(false)
	const M, N, K = 64, 48, 256
	a := tensor.New(M, K)
	w := tensor.New(N, K)
	for i := range a.F32 {
		a.F32[i] = float32(math.Sin(float64(i)))
	}
	for i := range w.F32 {
		w.F32[i] = float32(math.Cos(float64(i) * 0.7))
	}
	got, want := tensor.New(M, N), tensor.New(M, N)
	b.MatMul(got, a, w, tensor.MatMulOpts{TransB: true})
	tensor.NewCPU(1).MatMul(want, a, w, tensor.MatMulOpts{TransB: true})
	for i := range got.F32 {
		if d := math.Abs(float64(got.F32[i] - want.F32[i])); d > 0.05 {
			t.Fatalf("element %d: tf32 %v, f32 %v", i, got.F32[i], want.F32[i])
		}
	}
}

// TestBF16 checks the mixed-precision products against float32 ones on
// bfloat16-rounded inputs, for float32 and storage-only weights, with and
// without transposes and accumulation; and that training still follows
// the CPU's losses closely.
func TestBF16(t *testing.T) {
	b := openOrSkip(t)
	b.SetBF16(true)
	defer b.SetBF16(false)
	round := func(x *tensor.Tensor) *tensor.Tensor { return x.Convert(tensor.BF16).Convert(tensor.F32) }
	cpu := tensor.NewCPU(1)
	const M, N, K = 37, 48, 160
	for _, dt := range []tensor.DType{tensor.F32, tensor.BF16, tensor.F16, tensor.NF4} {
		for _, o := range []tensor.MatMulOpts{{TransB: true}, {TransB: true, Accumulate: true}, {}, {TransA: true, Batch: 2}} {
			bt := max(o.Batch, 1)
			ash, wsh := []int{bt * M, K}, []int{bt * K, N}
			if o.TransA {
				ash = []int{bt * K, M}
			}
			if o.TransB {
				wsh = []int{bt * N, K}
			}
			a, w := tensor.New(ash...), tensor.New(wsh...)
			for i := range a.F32 {
				a.F32[i] = float32(math.Sin(float64(i) * 0.37))
			}
			for i := range w.F32 {
				w.F32[i] = float32(math.Cos(float64(i) * 0.71))
			}
			var wt *tensor.Tensor
			switch dt {
			case tensor.F32:
				wt = w
			case tensor.NF4:
				q, err := tensor.Quantize(w, tensor.NF4)
				if err != nil {
					t.Fatal(err)
				}
				wt = q
			default:
				wt = w.Convert(dt)
			}
			got, want := tensor.New(bt*M, N), tensor.New(bt*M, N)
			for i := range got.F32 {
				got.F32[i] = float32(i%7) - 3
				want.F32[i] = got.F32[i]
			}
			b.MatMul(got, a, wt, o)
			// The reference: the same product of bfloat16-rounded operands.
			wf := wt
			if wf.DType != tensor.F32 {
				wf = tensor.FromF32(wt.Float32s(), wt.Shape...)
			}
			cpu.MatMul(want, round(a), round(wf), o)
			for i := range got.F32 {
				if d := math.Abs(float64(got.F32[i] - want.F32[i])); d > 1e-3*math.Max(1, math.Abs(float64(want.F32[i]))) {
					t.Fatalf("%v weights, %+v: element %d: bf16 %v, want %v", dt, o, i, got.F32[i], want.F32[i])
				}
			}
		}
	}
	steps, B, T := 4, 2, 32
	if os.Getenv("LLMLAB_CUDA_EMULATED") != "" {
		steps, B, T = 2, 1, 16
	}
	got := gputest.StepLosses(t, b, steps, B, T, nil)
	want := gputest.StepLosses(t, cpu, steps, B, T, nil)
	t.Logf("bf16 %v\nf32  %v", got, want)
	for i := range want {
		if d := math.Abs(float64(got[i] - want[i])); d > 2e-2*math.Max(1, math.Abs(float64(want[i]))) {
			t.Errorf("step %d: loss %v with bf16 products, %v in float32", i, got[i], want[i])
		}
	}
	if err := b.Err(); err != nil {
		t.Fatalf("a device error sent ops to the CPU: %v", err)
	}
}

// TestTrainingMatchesCPU runs a few training steps of the tiny preset on
// the device and on the CPU and compares the losses.
func TestTrainingMatchesCPU(t *testing.T) {
	b := openOrSkip(t)
	steps, B, T := 4, 2, 32
	if os.Getenv("LLMLAB_CUDA_EMULATED") != "" {
		steps, B, T = 2, 1, 16 // the emulator runs one CUDA thread at a time
	}
	var perStep []Stats
	got := gputest.StepLosses(t, b, steps, B, T, func(int) { perStep = append(perStep, b.Stats()) })
	want := gputest.StepLosses(t, tensor.NewCPU(0), steps, B, T, nil)
	t.Logf("cuda %v\ncpu  %v", got, want)
	for i := range want {
		if d := math.Abs(float64(got[i] - want[i])); d > 2e-3*math.Max(1, math.Abs(float64(want[i]))) {
			t.Errorf("step %d: loss %v on cuda, %v on cpu", i, got[i], want[i])
		}
	}
	if want[steps-1] >= want[0] {
		t.Errorf("the loss did not fall: %v", want)
	}
	if err := b.Err(); err != nil {
		t.Fatalf("a device error sent ops to the CPU: %v", err)
	}
	// Parameters, gradients, optimizer state and activations are device
	// tensors: the first step uploads the weights, the token ids and the
	// RoPE tables once; every later step reads back only its loss.
	first := perStep[0]
	t.Logf("step 1: %d copies (%d up, %d down), %d bytes; %d syncs; %d resident uses; peak device memory %d bytes",
		first.Copies(), first.Uploads, first.Downloads, first.CopiedBytes(), first.Syncs, first.Resident, first.PeakBytes)
	t.Logf("%d steps: %d copies, %d bytes, %d ops on the CPU", steps, perStep[steps-1].Copies(), perStep[steps-1].CopiedBytes(), perStep[steps-1].CPUOps)
	if n := perStep[steps-1].CPUOps; n != 0 {
		t.Errorf("%d ops ran on the CPU", n)
	}
	for i := 1; i < steps; i++ {
		d := perStep[i].Copies() - perStep[i-1].Copies()
		db := perStep[i].CopiedBytes() - perStep[i-1].CopiedBytes()
		t.Logf("step %d: %d copies, %d bytes, %d syncs", i+1, d, db, perStep[i].Syncs-perStep[i-1].Syncs)
		if d != 1 || db != 4 {
			t.Errorf("step %d copied %d times (%d bytes); want the loss alone (1 copy, 4 bytes)", i+1, d, db)
		}
	}
	// With residency off, host tensors copied in and out by every op give
	// the same losses.
	b.SetResident(false)
	defer b.SetResident(true)
	before := b.Stats()
	host := gputest.StepLosses(t, b, steps, B, T, nil)
	st := b.Stats()
	t.Logf("resident off: %v, %d copies, %d bytes", host, st.Copies()-before.Copies(), st.CopiedBytes()-before.CopiedBytes())
	for i := range want {
		if d := math.Abs(float64(host[i] - want[i])); d > 2e-3*math.Max(1, math.Abs(float64(want[i]))) {
			t.Errorf("resident off, step %d: loss %v on cuda, %v on cpu", i, host[i], want[i])
		}
	}
}

// TestEmulated runs this package's device tests against the CPU stand-ins
// for libcuda and libcublas in testdata/emu, so the kernels, launch shapes
// and bindings are checked on machines without a GPU. The backend compiles
// its kernels with NVRTC before it launches them, so the emulator needs
// g++ (to build the stand-ins) and libnvrtc (Debian: libnvrtc11.2 from
// non-free); without either it skips and says which. With
// LLMLAB_REQUIRE_CUDA_EMULATOR=1 (CI sets it after installing both) a
// missing piece fails instead, so CI cannot pass by skipping. The kernels
// run as coroutines, one CUDA thread at a time: slow, hence skipped in
// -short mode.
func TestEmulated(t *testing.T) {
	if os.Getenv("LLMLAB_CUDA_EMULATED") != "" {
		t.Skip("already running under the emulator")
	}
	if testing.Short() {
		t.Skip("slow (builds and runs the kernels on a CPU emulator)")
	}
	missing := t.Skipf
	if os.Getenv("LLMLAB_REQUIRE_CUDA_EMULATOR") != "" {
		missing = t.Fatalf
	}
	if _, err := exec.LookPath("g++"); err != nil {
		missing("no g++ to build the CUDA emulator (install g++): %v", err)
	}
	if _, err := openNVRTC(); err != nil {
		missing("no NVRTC to compile the kernels for the CUDA emulator (install libnvrtc11.2 from Debian's non-free component): %v", err)
	}
	if b, err := Open(); err == nil {
		b.Close()
		t.Skip("a real CUDA device is here")
	}
	dir := t.TempDir()
	if out, err := exec.Command("sh", "testdata/emu/build.sh", dir).CombinedOutput(); err != nil {
		t.Fatalf("building the emulator: %v\n%s", err, out)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^(TestBackendOps|TestTrainingMatchesCPU|TestTF32|TestBF16|TestGenerateMatchesCPU|TestPEFTMatchesCPU|TestAdamWAll|TestGGMLWeights)$", "-test.v")
	cmd.Env = append(os.Environ(), "LD_LIBRARY_PATH="+dir, "LLMLAB_CUDA_EMULATED=1", "XDG_CACHE_HOME="+filepath.Join(dir, "cache"))
	out, err := cmd.CombinedOutput()
	s := string(out)
	switch {
	case err != nil:
		t.Fatalf("the device tests under the emulator failed (%v):\n%s", err, s)
	case strings.Contains(s, "--- SKIP"), !strings.Contains(s, "CPU emulator"):
		t.Fatalf("the device tests under the emulator did not run (a test skipped, or the backend did not open on the emulator):\n%s", s)
	}
	t.Logf("under the emulator:\n%s", lastLines(s, 40))
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(l[max(0, len(l)-n):], "\n")
}

// TestPEFTMatchesCPU trains every PEFT method on CUDA device tensors: the
// losses must match the CPU's.
func TestPEFTMatchesCPU(t *testing.T) {
	b := openOrSkip(t)
	gputest.PEFTMatchesCPU(t, b)
	if err := b.Err(); err != nil {
		t.Fatalf("a device error sent ops to the CPU: %v", err)
	}
}

// TestGenerateMatchesCPU: greedy decoding, with the KV cache in managed
// memory, gives the CPU's tokens.
func TestGenerateMatchesCPU(t *testing.T) {
	b := openOrSkip(t)
	gputest.GenerateMatchesCPU(t, b)
	if err := b.Err(); err != nil {
		t.Fatalf("a device error sent ops to the CPU: %v", err)
	}
	// Copies per decode step at batch 1, greedy: the token id picked on
	// the device comes back; the next id, its position and the cache's
	// segment ids go up when the int array cache has not seen them.
	cfg, err := model.Preset(model.Llama, "tiny")
	if err != nil {
		t.Fatal(err)
	}
	m, err := model.New(cfg, 3)
	if err != nil {
		t.Fatal(err)
	}
	g := generate.New(m, b, nil)
	const n = 6
	gen := func(tokens int) Stats {
		// Forget the int arrays of earlier runs, which made the same
		// tokens at the same positions.
		b.mu.Lock()
		b.dropInts()
		b.mu.Unlock()
		req := generate.Request{Prompts: [][]int32{{5, 17, 99}}, MaxTokens: tokens}
		if _, err := g.Generate(context.Background(), req); err != nil {
			t.Fatal(err)
		}
		return b.Stats()
	}
	before := gen(2 + n) // the weights and a cache of the longer run's size
	short := gen(2)
	long := gen(2 + n)
	// (the longer run) - (the shorter one) = n decode steps.
	up := (long.Uploads - short.Uploads) - (short.Uploads - before.Uploads)
	down := (long.Downloads - short.Downloads) - (short.Downloads - before.Downloads)
	bytes := (long.CopiedBytes() - short.CopiedBytes()) - (short.CopiedBytes() - before.CopiedBytes())
	t.Logf("decode: %.1f uploads, %.1f downloads, %.0f bytes a token", float64(up)/n, float64(down)/n, float64(bytes)/n)
	if down != n {
		t.Errorf("%d downloads for %d decode steps; want one (the token id) a step", down, n)
	}
}

// TestAdamWAll: one launch over many device tensors gives what AdamW gives
// tensor by tensor, bit for bit (the same arithmetic), decays included.
func TestAdamWAll(t *testing.T) {
	b := openOrSkip(t)
	sizes := []int{1, 300, 70001, 64}
	decay := []float32{0.1, 0, 0.1, 0.05}
	mk := func() (ps, gs, ms, vs []*tensor.Tensor) {
		for i, n := range sizes {
			for j, dst := range []*[]*tensor.Tensor{&ps, &gs, &ms, &vs} {
				h := tensor.New(n)
				for k := range h.F32 {
					h.F32[k] = float32(math.Sin(float64(k*(j+2)+i))) * 0.1
					if j == 3 {
						h.F32[k] *= h.F32[k] // v >= 0
					}
				}
				d, err := tensor.NewOn(b, n)
				if err != nil {
					t.Fatal(err)
				}
				tensor.Copy(d, h)
				*dst = append(*dst, d)
			}
		}
		return
	}
	o := tensor.AdamWOpts{LR: 1e-3, Beta1: 0.9, Beta2: 0.95, Eps: 1e-8, Step: 3}
	p1, g1, m1, v1 := mk()
	p2, g2, m2, v2 := mk()
	b.AdamWAll(p1, g1, m1, v1, decay, o)
	for i := range p2 {
		oi := o
		oi.WeightDecay = decay[i]
		b.AdamW(p2[i], g2[i], m2[i], v2[i], oi)
	}
	for i := range p1 {
		for j, pair := range [][2]*tensor.Tensor{{p1[i], p2[i]}, {m1[i], m2[i]}, {v1[i], v2[i]}} {
			got, want := pair[0].Host().F32, pair[1].Host().F32
			for k := range want {
				if math.Float32bits(got[k]) != math.Float32bits(want[k]) {
					t.Fatalf("tensor %d (%s) element %d: %v in one launch, %v one by one", i, []string{"p", "m", "v"}[j], k, got[k], want[k])
				}
			}
		}
	}
}

// TestGGMLWeights: products with GGML block weights (Q8_0, Q4_K) match
// the CPU's (the device dequantises them once, on the host for now).
func TestGGMLWeights(t *testing.T) {
	b := openOrSkip(t)
	cpu := tensor.NewCPU(1)
	const M, N, K = 5, 16, 256
	a, w := tensor.New(M, K), tensor.New(N, K)
	for i := range a.F32 {
		a.F32[i] = float32(math.Sin(float64(i) * 0.37))
	}
	for i := range w.F32 {
		w.F32[i] = float32(math.Cos(float64(i) * 0.71))
	}
	for _, dt := range []tensor.DType{tensor.Q8_0, tensor.Q4_K} {
		q, err := tensor.QuantizeGGML(w, dt)
		if err != nil {
			t.Fatal(err)
		}
		got, want := tensor.New(M, N), tensor.New(M, N)
		b.MatMul(got, a, q, tensor.MatMulOpts{TransB: true})
		cpu.MatMul(want, a, tensor.FromF32(q.Float32s(), N, K), tensor.MatMulOpts{TransB: true})
		for i := range got.F32 {
			if d := math.Abs(float64(got.F32[i] - want.F32[i])); d > 1e-3*math.Max(1, math.Abs(float64(want.F32[i]))) {
				t.Fatalf("%v: element %d: %v on the device, %v on the CPU", dt, i, got.F32[i], want.F32[i])
			}
		}
	}
}
