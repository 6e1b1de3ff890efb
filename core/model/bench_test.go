package model

import (
	"testing"

	"llmlab/core/autograd"
	"llmlab/core/tensor"
)

// BenchmarkTrainStep times forward+backward of the tiny preset at batch
// 16x128 and reports tokens/s and allocations per step.
func BenchmarkTrainStep(b *testing.B) {
	cfg, err := Preset(Llama, "tiny")
	if err != nil {
		b.Fatal(err)
	}
	m, _ := New(cfg, 1)
	B, T := 16, 128
	ids := make([]int32, B*T)
	tg := make([]int32, B*T)
	for i := range ids {
		ids[i], tg[i] = int32(i*31%cfg.VocabSize), int32(i*17%cfg.VocabSize)
	}
	tp := autograd.NewTape(tensor.NewCPU(0))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		tp.Reset()
		loss, _, err := m.Loss(tp, Inputs{B: B, T: T, IDs: ids}, tg)
		if err != nil {
			b.Fatal(err)
		}
		tp.Backward(loss)
	}
	b.ReportMetric(float64(B*T*b.N)/b.Elapsed().Seconds(), "tokens/s")
}
