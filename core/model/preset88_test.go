package model

import "testing"

// TestLlama88MPreset: the serving benchmark's shape has 88M parameters.
func TestLlama88MPreset(t *testing.T) {
	c, err := Preset(Llama, "llama-88m")
	if err != nil {
		t.Fatal(err)
	}
	// Tied embeddings; per layer q, k, v, o, gate, up, down and two norms.
	n := c.VocabSize*c.Hidden + c.Layers*(4*c.Hidden*c.Hidden+3*c.Hidden*c.Intermediate+2*c.Hidden) + c.Hidden
	if n < 87_500_000 || n > 88_500_000 {
		t.Fatalf("llama-88m has %d parameters", n)
	}
}
