package cli

import (
	"testing"

	"llmlab/core/autograd"
	"llmlab/core/model"
	"llmlab/core/tensor"
)

// TestMemoryEstimateMatchesArena: the activation estimate is within 25% of
// what the tape's arena really takes for a training step.
func TestMemoryEstimateMatchesArena(t *testing.T) {
	for _, name := range []string{"llama", "gpt2", "large vocabulary"} {
		t.Run(name, func(t *testing.T) {
			arch := model.Llama
			if name == "gpt2" {
				arch = model.GPT2
			}
			c, err := model.Preset(arch, "tiny")
			if err != nil {
				t.Fatal(err)
			}
			m, err := model.New(c, 1)
			if err != nil {
				t.Fatal(err)
			}
			if name == "large vocabulary" {
				m.LossChunkRows = 16 // as a 150k vocabulary would: the loss in chunks
			}
			B, T := 2, 64
			ids := make([]int32, B*T)
			for i := range ids {
				ids[i] = int32(i % c.VocabSize)
			}
			tp := autograd.NewTape(tensor.NewCPU(0))
			for range 2 { // the second Reset sizes the arena for a whole step
				tp.Reset()
				loss, _, err := m.Loss(tp, model.Inputs{B: B, T: T, IDs: ids}, ids)
				if err != nil {
					t.Fatal(err)
				}
				tp.Backward(loss)
			}
			tp.Reset()
			real := float64(tp.ArenaFloats() * 4)
			est := float64(estimateMemory(m, B, T, int64(m.NumParams())).Activations)
			t.Logf("estimate %.0f, arena %.0f", est, real)
			if r := est / real; r < 0.75 || r > 1.25 {
				t.Errorf("estimate %.0f bytes, arena %.0f bytes (ratio %.2f)", est, real, r)
			}
		})
	}
}
