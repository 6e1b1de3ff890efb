//go:build linux || freebsd

package vulkan

import (
	"math"
	"testing"

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
// memory, in both memory modes, and counts what crosses: the first step
// uploads the weights, the token ids, the targets and the RoPE tables
// once; every later step submits one command buffer and reads back its
// loss alone (4 bytes). The losses equal the CPU's; with residency off
// (every op copying its host tensors in and out, and waiting) too.
func TestStepTraffic(t *testing.T) {
	openOrSkip(t).Close()
	const steps, B, T = 3, 2, 32
	want := gputest.StepLosses(t, tensor.NewCPU(1), steps, B, T, nil)
	for _, staging := range []bool{false, true} {
		b, err := open(tensor.NewCPU(1), staging)
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		var per []Stats
		got := gputest.StepLosses(t, b, steps, B, T, func(int) { per = append(per, b.Stats()) })
		close := func(what string, got []float32) {
			for i := range want {
				if d := math.Abs(float64(got[i] - want[i])); d > 2e-3*math.Max(1, math.Abs(float64(want[i]))) {
					t.Errorf("%s, step %d: loss %v on vulkan, %v on the CPU", what, i+1, got[i], want[i])
				}
			}
		}
		mode := map[bool]string{false: "mapped device memory", true: "staging"}[staging]
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
			t.Logf("%s, step %d: %d submits, %d copies, %d bytes", mode, i+1, s, c, db)
			if s != 1 || c != 1 || db != 4 {
				t.Errorf("%s, step %d: %d submits, %d copies (%d bytes); want one submit that reads the loss alone (1 copy, 4 bytes)", mode, i+1, s, c, db)
			}
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
