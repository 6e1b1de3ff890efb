package train

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"llmlab/core/autograd"
	"llmlab/core/model"
	"llmlab/core/optim"
	"llmlab/core/tensor"
	"llmlab/core/tensor/devicetest"
)

// TestDeviceResidentRun trains with the training loop on a backend with
// its own memory (devicetest: parameters, gradients, moments and
// activations are device tensors) and must end with the CPU's weights bit
// for bit, uninterrupted and through a checkpoint and resume (weights and
// optimizer state written from, and read back into, device memory).
func TestDeviceResidentRun(t *testing.T) {
	want, _, err := trainTiny(t, context.Background(), lmConfig(t.TempDir(), 8), 1, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, evs, err := trainTinyOn(t, context.Background(), lmConfig(t.TempDir(), 8), devicetest.New(1), 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Error("training on device tensors ends with different weights than on the CPU")
	}
	for _, e := range evs {
		if e.Kind == "step" && (e.Loss <= 0 || e.GradNorm <= 0) {
			t.Errorf("step event lacks figures: %+v", e)
		}
	}
	// Gradient accumulation: the micro-batches' losses are read together.
	acc := lmConfig(t.TempDir(), 4)
	acc.Accum = 3
	wantAcc, wantEvs, err := trainTiny(t, context.Background(), acc, 1, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	acc.Out = t.TempDir()
	gotAcc, gotEvs, err := trainTinyOn(t, context.Background(), acc, devicetest.New(1), 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(gotAcc, wantAcc) {
		t.Error("accumulated steps on device tensors end with different weights than on the CPU")
	}
	for i := range wantEvs {
		if wantEvs[i].Kind == "step" && wantEvs[i].Loss != gotEvs[i].Loss {
			t.Errorf("step %d: loss %v on device tensors, %v on the CPU", wantEvs[i].Step, gotEvs[i].Loss, wantEvs[i].Loss)
		}
	}

	out := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	_, _, err = trainTinyOn(t, ctx, lmConfig(out, 8), devicetest.New(1), 1, func(e Event) {
		if e.Kind == "step" && e.Step == 5 {
			cancel()
		}
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("want a cancelled run, got %v", err)
	}
	c := lmConfig(out, 8)
	c.Resume = true
	got, _, err = trainTinyOn(t, context.Background(), c, devicetest.New(1), 2, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Error("a resumed run on device tensors ends with different weights than the CPU's uninterrupted run")
	}
}

// TestDeviceResidentStep: once the weights are on the device, a training
// step (with gradient clipping through optim.Clipper) reads back only its
// loss, copies nothing in, and hands the ops no host tensor.
func TestDeviceResidentStep(t *testing.T) {
	llama, err := model.Preset(model.Llama, "tiny")
	if err != nil {
		t.Fatal(err)
	}
	gpt2, err := model.Preset(model.GPT2, "tiny")
	if err != nil {
		t.Fatal(err)
	}
	mistral, err := model.ParseConfig([]byte(`{"model_type":"mistral","vocab_size":257,"hidden_size":32,"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,"intermediate_size":48,"max_position_embeddings":64,"sliding_window":5}`))
	if err != nil {
		t.Fatal(err)
	}
	gemma2, err := model.ParseConfig([]byte(`{"model_type":"gemma2","vocab_size":257,"hidden_size":32,"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,"head_dim":8,"intermediate_size":48,"max_position_embeddings":64,"sliding_window":4,"query_pre_attn_scalar":8,"final_logit_softcapping":3.0,"attn_logit_softcapping":5.0,"hidden_activation":"gelu_pytorch_tanh"}`))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		cfg  model.Config
		// hostConst: the family hands its ops a host constant each step
		// (Gemma's (1+w) norms add a vector of ones).
		hostConst bool
		chunk     int // LossChunkRows: the loss a few rows at a time
	}{{"llama", llama, false, 0}, {"gpt2", gpt2, false, 0}, {"llama chunked loss", llama, false, 7},
		{"mistral window", mistral, false, 0}, {"gemma2 softcaps", gemma2, true, 0}} {
		cfg := tc.cfg
		t.Run(tc.name, func(t *testing.T) {
			losses := func(b tensor.Backend, after func()) []float32 {
				m, err := model.New(cfg, 5)
				if err != nil {
					t.Fatal(err)
				}
				m.LossChunkRows = tc.chunk
				ps := m.ParamList()
				opt := optim.NewAdamW(optim.AdamWConfig{LR: 1e-3, Beta1: 0.9, Beta2: 0.95, Eps: 1e-8, WeightDecay: 0.1}, ps)
				var clip optim.Clipper
				defer clip.Free()
				ids, targets := FixedBatch(cfg.VocabSize, 2*16)
				targets[3] = -1 // a position without a target: the gathered-rows path
				tape := autograd.NewTape(b)
				var out []float32
				for range 3 {
					tape.Reset()
					loss, _, err := m.Loss(tape, model.Inputs{B: 2, T: 16, IDs: ids}, targets)
					if err != nil {
						t.Fatal(err)
					}
					out = append(out, loss.Value.At(0))
					if err := tape.Backward(loss); err != nil {
						t.Fatal(err)
					}
					clip.Clip(b, ps, 0.5)
					opt.Update(b, 1e-3)
					opt.ZeroGrad()
					if after != nil {
						after()
					}
				}
				return out
			}
			want := losses(tensor.NewCPU(1), nil)
			dev := devicetest.New(1)
			var st []devicetest.Stats
			got := losses(dev, func() { st = append(st, dev.Stats()) })
			for i := range want {
				if got[i] != want[i] {
					t.Errorf("step %d: loss %v on device tensors, %v on the CPU", i, got[i], want[i])
				}
			}
			for i := 1; i < len(st); i++ {
				d, u, h := st[i].Downloads-st[i-1].Downloads, st[i].Uploads-st[i-1].Uploads, st[i].HostArgs-st[i-1].HostArgs
				if tc.hostConst {
					h = 0
				}
				if d != 1 || u != 0 || h != 0 {
					t.Errorf("step %d: %d downloads, %d uploads, %d host tensors given to ops; want 1 (the loss), 0, 0", i+1, d, u, h)
				}
			}
		})
	}
}
