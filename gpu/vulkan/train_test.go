//go:build linux || freebsd

package vulkan

import (
	"context"
	"math"
	"testing"

	"llmlab/core/generate"
	"llmlab/core/model"
	"llmlab/core/optim"
	"llmlab/core/tensor"
	"llmlab/gpu/gputest"
)

var _ optim.NormClipper = (*Backend)(nil)

// TestTrainingMatchesCPU trains a tiny Llama, GPT-2 and Gemma 2 for a few
// steps on Vulkan and on the CPU: the loss curves must agree.
func TestTrainingMatchesCPU(t *testing.T) {
	b := openOrSkip(t)
	gputest.TrainMatchesCPU(t, b)
	if st := b.Stats(); st.CPUOps != 0 {
		t.Errorf("%d ops ran on the CPU", st.CPUOps)
	}
}

// TestPEFTMatchesCPU trains every PEFT method on Vulkan device tensors:
// the losses follow the CPU's, the host-written ops' copies included.
func TestPEFTMatchesCPU(t *testing.T) {
	gputest.PEFTMatchesCPU(t, openOrSkip(t))
}

// TestTrainingStaging: the same through the staging path.
func TestTrainingStaging(t *testing.T) {
	if testing.Short() {
		t.Skip("slow on a CPU Vulkan device")
	}
	openOrSkip(t).Close()
	b, err := open(tensor.NewCPU(1), true)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	gputest.TrainMatchesCPU(t, b)
}

// TestStepTraffic trains the tiny Llama with every tensor in device
// memory, in each memory mode (mapped; mapped but read back through
// staging, as on a discrete GPU with resizable BAR; staging), and counts
// what crosses: the first step
// uploads the weights, the token ids, the targets and the RoPE tables
// once; every later step submits one command buffer and reads back its
// loss alone (4 bytes). The losses equal the CPU's; with residency off
// (every op copying its host tensors in and out, and waiting) too.
func TestStepTraffic(t *testing.T) {
	openOrSkip(t).Close()
	const steps, B, T = 3, 2, 32
	want := gputest.StepLosses(t, tensor.NewCPU(1), steps, B, T, nil)
	for _, mode := range []string{"mapped device memory", "mapped, read through staging", "staging"} {
		b, err := open(tensor.NewCPU(1), mode == "staging")
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		if mode == "mapped, read through staging" {
			b.d.readMapped = false
		}
		var per []Stats
		got := gputest.StepLosses(t, b, steps, B, T, func(int) { per = append(per, b.Stats()) })
		close := func(what string, got []float32) {
			for i := range want {
				if d := math.Abs(float64(got[i] - want[i])); d > 2e-3*math.Max(1, math.Abs(float64(want[i]))) {
					t.Errorf("%s, step %d: loss %v on vulkan, %v on the CPU", what, i+1, got[i], want[i])
				}
			}
		}
		close(mode, got)
		if per[steps-1].CPUOps != 0 {
			t.Errorf("%s: %d ops ran on the CPU", mode, per[steps-1].CPUOps)
		}
		f := per[0]
		t.Logf("%s, step 1: %d submits, %d copies (%d up, %d down), %d bytes; %d fills; peak device memory %d bytes",
			mode, f.Submits, f.Copies(), f.Uploads, f.Downloads, f.CopiedBytes(), f.Fills, f.PeakBytes)
		for i := 1; i < steps; i++ {
			s := per[i].Submits - per[i-1].Submits
			c := per[i].Copies() - per[i-1].Copies()
			db := per[i].CopiedBytes() - per[i-1].CopiedBytes()
			t.Logf("%s, step %d: %d submits, %d copies, %d bytes; %d commands, %d barriers", mode, i+1, s, c, db,
				per[i].Commands-per[i-1].Commands, per[i].Barriers-per[i-1].Barriers)
			if s != 1 || c != 1 || db != 4 {
				t.Errorf("%s, step %d: %d submits, %d copies (%d bytes); want one submit that reads the loss alone (1 copy, 4 bytes)", mode, i+1, s, c, db)
			}
		}
		if testing.Short() {
			continue // the host-tensor path below waits after every op: slow
		}
		b.SetResident(false)
		before := b.Stats()
		host := gputest.StepLosses(t, b, steps, B, T, nil)
		st := b.Stats()
		t.Logf("%s, resident off: %d steps, %d submits, %d copies, %d bytes", mode, steps,
			st.Submits-before.Submits, st.Copies()-before.Copies(), st.CopiedBytes()-before.CopiedBytes())
		close(mode+", resident off", host)
	}
}

// TestGenerateMatchesCPU: greedy decoding with the KV cache in device
// memory gives the CPU's tokens.
func TestGenerateMatchesCPU(t *testing.T) {
	gputest.GenerateMatchesCPU(t, openOrSkip(t))
}

// TestLongRecording: a command buffer that fills up is submitted on its
// own (here every 50 commands): the steps still match the CPU's.
func TestLongRecording(t *testing.T) {
	b := openOrSkip(t)
	b.d.maxRecorded = 50
	want := gputest.StepLosses(t, tensor.NewCPU(1), 2, 2, 16, nil)
	got := gputest.StepLosses(t, b, 2, 2, 16, nil)
	for i := range want {
		if d := math.Abs(float64(got[i] - want[i])); d > 2e-3*math.Max(1, math.Abs(float64(want[i]))) {
			t.Errorf("step %d: loss %v on vulkan, %v on the CPU", i+1, got[i], want[i])
		}
	}
	if st := b.Stats(); st.Submits < st.Commands/50 {
		t.Errorf("%d submits for %d commands", st.Submits, st.Commands)
	}
}

// TestDecodeTraffic: a greedy decode step at batch 1 submits once and
// reads back one thing, the token id picked on the device (ArgMax); the
// next id, its position and the cache's segment ids go up when the int
// array cache has not seen them.
func TestDecodeTraffic(t *testing.T) {
	b := openOrSkip(t)
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
		b.dropInts() // forget the arrays of earlier runs, which made the same tokens
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
	diff := func(f func(Stats) int) int { return (f(long) - f(short)) - (f(short) - f(before)) }
	up := diff(func(s Stats) int { return s.Uploads })
	down := diff(func(s Stats) int { return s.Downloads })
	subs := diff(func(s Stats) int { return s.Submits })
	bytes := diff(func(s Stats) int { return int(s.CopiedBytes()) })
	t.Logf("decode: %.1f submits, %.1f uploads, %.1f downloads, %.0f bytes a token", float64(subs)/n, float64(up)/n, float64(down)/n, float64(bytes)/n)
	if down != n || subs != n {
		t.Errorf("%d downloads and %d submits for %d decode steps; want one each (the token id) a step", down, subs, n)
	}
}

// TestViews: device tensors at offsets the device cannot bind (views made
// by Offset, as the loss rows and batch slots are) work as inputs, as
// outputs and in copies.
func TestViews(t *testing.T) {
	b := openOrSkip(t)
	cpu := tensor.NewCPU(1)
	const n = 37
	if b.d.align <= 4 {
		t.Logf("%s binds at any offset: the misaligned path is not taken", b.Name())
	}
	host := tensor.New(4 * n)
	for i := range host.F32 {
		host.F32[i] = float32(i%11) - 5
	}
	dev, err := tensor.NewOn(b, 4*n)
	if err != nil {
		t.Fatal(err)
	}
	defer tensor.Free(dev)
	tensor.Copy(dev, host)
	// dst[3..3+n) += 0.5 * src[n+1..2n+1), and dst[2n+2..3n+2) = gelu of it,
	// on the device and on the host.
	for _, x := range []*tensor.Tensor{dev, host} {
		be := tensor.Backend(b)
		if x == host {
			be = cpu
		}
		be.AddScaled(x.Offset(3, n), x.Offset(n+1, n), 0.5)
		be.GELU(x.Offset(2*n+2, n), x.Offset(3, n))
		tensor.Copy(x.Offset(1, 2), x.Offset(2*n+5, 2)) // a copy within, misaligned both ends
	}
	one := tensor.New(1)
	tensor.Copy(one, dev.Offset(2*n+7, 1))
	got := dev.Host()
	for i := range host.F32 {
		if d := math.Abs(float64(got.F32[i] - host.F32[i])); d > 1e-5 {
			t.Fatalf("element %d: %v on the device, %v on the host", i, got.F32[i], host.F32[i])
		}
	}
	if one.F32[0] != host.F32[2*n+7] {
		t.Fatalf("one element read back: %v, want %v", one.F32[0], host.F32[2*n+7])
	}
}

// TestAdamWAll: eight tensors to a dispatch give what AdamW gives tensor
// by tensor, bit for bit (the same arithmetic), decays and views at
// offsets the device cannot bind included.
func TestAdamWAll(t *testing.T) {
	b := openOrSkip(t)
	if !b.d.bind32 {
		t.Logf("%s cannot bind 32 buffers to a kernel: AdamWAll goes tensor by tensor", b.Name())
	}
	sizes := []int{1, 300, 70001, 64, 5, 9, 1000, 3, 257, 31}
	decay := []float32{0.1, 0, 0.1, 0.05, 0, 0.1, 0.2, 0, 0.1, 0.3}
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
				d, err := tensor.NewOn(b, n+1)
				if err != nil {
					t.Fatal(err)
				}
				if i%3 == 1 {
					d = d.Offset(1, n) // misaligned
				} else {
					d = d.Offset(0, n)
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
	before := b.Stats().Commands
	b.AdamWAll(p1, g1, m1, v1, decay, o)
	t.Logf("%d tensors: %d commands", len(sizes), b.Stats().Commands-before)
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
					t.Fatalf("tensor %d (%s) element %d: %v eight to a dispatch, %v one by one", i, []string{"p", "m", "v"}[j], k, got[k], want[k])
				}
			}
		}
	}
}
