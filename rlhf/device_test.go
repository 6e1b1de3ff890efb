package rlhf

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"

	"llmlab/core/tensor/devicetest"
)

// TestDeviceResident runs PPO and GRPO (LoRA and full policies) on a
// backend with its own memory (devicetest: weights, gradients and
// activations are device tensors, read on the host only through their
// edges) and on the CPU: the reports and the trained weights must be
// identical.
func TestDeviceResident(t *testing.T) {
	stripPPO := func(its []PPOIteration) []PPOIteration {
		for i := range its {
			its[i].RolloutS, its[i].ScoreS, its[i].ForwardS, its[i].RefS, its[i].UpdateS = 0, 0, 0, 0, 0
			its[i].RolloutTPS, its[i].UpdateTPS = 0, 0
		}
		return its
	}
	for _, tc := range []struct {
		name string
		mk   func(*testing.T, PPOConfig, Scorer) *PPORun
	}{{"ppo-lora", newLoRAPPO}, {"ppo-full", newFullPPO}} {
		t.Run(tc.name, func(t *testing.T) {
			c := smallPPO()
			c.Iterations, c.Epochs, c.MiniBatch, c.EntCoef = 2, 2, 2, 0.01
			var want, got []PPOIteration
			cpu := tc.mk(t, c, containsToken(5))
			if err := cpu.Train(context.Background(), ppoTasks(3), func(it PPOIteration) { want = append(want, it) }); err != nil {
				t.Fatal(err)
			}
			dev := tc.mk(t, c, containsToken(5))
			dev.B = devicetest.New(1)
			if err := dev.Train(context.Background(), ppoTasks(3), func(it PPOIteration) { got = append(got, it) }); err != nil {
				t.Fatal(err)
			}
			if len(want) != c.Iterations {
				t.Fatalf("%d iterations reported, want %d", len(want), c.Iterations)
			}
			t.Logf("cpu %+v", want[len(want)-1])
			if d := cmp.Diff(stripPPO(want), stripPPO(got)); d != "" {
				t.Errorf("iterations (-cpu +device):\n%s", d)
			}
			pc, pd := append(cpu.Params, cpu.Value.Params()...), append(dev.Params, dev.Value.Params()...)
			for i := range pc {
				if d := cmp.Diff(pc[i].Value.Float32s(), pd[i].Value.Float32s()); d != "" {
					t.Errorf("%s differs:\n%s", pc[i].Name, d)
				}
			}
		})
	}
	for _, tc := range []struct {
		name string
		mk   func(*testing.T) *GRPORun
	}{{"grpo-lora", newLoRAGRPO}, {"grpo-full", newFullGRPO}} {
		t.Run(tc.name, func(t *testing.T) {
			var want, got []GRPOStep
			cpu := tc.mk(t)
			if err := cpu.Train(context.Background(), ppoTasks(3), 2, func(s GRPOStep) { want = append(want, s) }); err != nil {
				t.Fatal(err)
			}
			dev := tc.mk(t)
			dev.B = devicetest.New(1)
			if err := dev.Train(context.Background(), ppoTasks(3), 2, func(s GRPOStep) { got = append(got, s) }); err != nil {
				t.Fatal(err)
			}
			if len(want) != 2 {
				t.Fatalf("%d steps reported, want 2", len(want))
			}
			t.Logf("cpu %+v", want[len(want)-1])
			if d := cmp.Diff(stripGRPO(want), stripGRPO(got)); d != "" {
				t.Errorf("steps (-cpu +device):\n%s", d)
			}
			for i := range cpu.Params {
				if d := cmp.Diff(cpu.Params[i].Value.Float32s(), dev.Params[i].Value.Float32s()); d != "" {
					t.Errorf("%s differs:\n%s", cpu.Params[i].Name, d)
				}
			}
		})
	}
}
