package generate

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"llmlab/core/model"
	"llmlab/core/tensor"
	"llmlab/core/tensor/devicetest"
)

// TestDeviceResident decodes on a backend with its own memory
// (devicetest): the tokens must be the CPU's, greedy and sampled, and a
// greedy decode step must read back only its token ids and hand the ops
// nothing from the host.
func TestDeviceResident(t *testing.T) {
	for _, tc := range []struct{ name, config string }{
		{"gpt2", `{"model_type":"gpt2","vocab_size":257,"n_embd":32,"n_layer":2,"n_head":4,"n_positions":64}`},
		{"llama", `{"model_type":"llama","vocab_size":257,"hidden_size":32,"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,"intermediate_size":48,"max_position_embeddings":64}`},
		{"mistral window", `{"model_type":"mistral","vocab_size":257,"hidden_size":32,"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,"intermediate_size":48,"max_position_embeddings":64,"sliding_window":5}`},
		{"gemma3 window", `{"model_type":"gemma3_text","vocab_size":257,"hidden_size":32,"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,"head_dim":8,"intermediate_size":48,"max_position_embeddings":64,"sliding_window":4,"query_pre_attn_scalar":8,"sliding_window_pattern":2}`},
		{"gemma2 softcaps", `{"model_type":"gemma2","vocab_size":257,"hidden_size":32,"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,"head_dim":8,"intermediate_size":48,"max_position_embeddings":64,"sliding_window":4,"query_pre_attn_scalar":8,"final_logit_softcapping":3.0,"attn_logit_softcapping":5.0,"hidden_activation":"gelu_pytorch_tanh"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			windowed := strings.Contains(tc.config, "sliding_window")
			cfg, err := model.ParseConfig([]byte(tc.config))
			if err != nil {
				t.Fatal(err)
			}
			// Two copies of one model: the device run moves its weights.
			mc, err := model.New(cfg, 11)
			if err != nil {
				t.Fatal(err)
			}
			md, err := model.New(cfg, 11)
			if err != nil {
				t.Fatal(err)
			}
			dev := devicetest.New(1)
			cases := []struct {
				name string
				s    Sampling
			}{
				{"greedy", Sampling{}},
				{"sampled", Sampling{Temperature: 0.8, TopK: 50, TopP: 0.95}},
			}
			for _, sc := range cases {
				req := Request{Prompts: [][]int32{{72, 101, 108}, {5, 6, 7, 8, 9, 10, 11}}, MaxTokens: 12, Sampling: sc.s, Seed: 3}
				want, err := New(mc, tensor.NewCPU(1), byteDecoder{}).Generate(context.Background(), req)
				if err != nil {
					t.Fatal(err)
				}
				got, err := New(md, dev, byteDecoder{}).Generate(context.Background(), req)
				if err != nil {
					t.Fatal(err)
				}
				for i := range want.IDs {
					if !slices.Equal(got.IDs[i], want.IDs[i]) {
						t.Errorf("%s, sequence %d: %v on the device, %v on the CPU", sc.name, i, got.IDs[i], want.IDs[i])
					}
				}
			}
			// The model moved to the device; the CPU takes it back.
			back, err := New(md, tensor.NewCPU(1), byteDecoder{}).Generate(context.Background(), Request{Prompts: [][]int32{{72, 101, 108}}, MaxTokens: 8})
			if err != nil {
				t.Fatal(err)
			}
			alone, err := New(mc, tensor.NewCPU(1), byteDecoder{}).Generate(context.Background(), Request{Prompts: [][]int32{{72, 101, 108}}, MaxTokens: 8})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(back.IDs[0], alone.IDs[0]) {
				t.Errorf("on the CPU after the device: %v, want %v", back.IDs[0], alone.IDs[0])
			}
			// Traffic of greedy decode steps: (a run of 2+n tokens) - (a run
			// of 2) is n steps.
			g := New(md, dev, byteDecoder{})
			run := func(tokens int) devicetest.Stats {
				if _, err := g.Generate(context.Background(), Request{Prompts: [][]int32{{72, 101, 108}}, MaxTokens: tokens}); err != nil {
					t.Fatal(err)
				}
				return dev.Stats()
			}
			const n = 5
			s0 := run(2 + n)
			s1 := run(2)
			s2 := run(2 + n)
			down := (s2.Downloads - s1.Downloads) - (s1.Downloads - s0.Downloads)
			up := (s2.Uploads - s1.Uploads) - (s1.Uploads - s0.Uploads)
			host := (s2.HostArgs - s1.HostArgs) - (s1.HostArgs - s0.HostArgs)
			if windowed {
				// A windowed layer's prefill copies its ring through the
				// host (tensor.OnHost), which this difference of runs does
				// not isolate, and Gemma's (1+w) norms hand a host constant
				// to their ops: only the one read a step is checked.
				up, host = 0, 0
			}
			if down != n || up != 0 || host != 0 {
				t.Errorf("%d greedy decode steps: %d downloads, %d uploads, %d host tensors given to ops; want %d, 0, 0", n, down, up, host, n)
			}
		})
	}
}

// TestDeviceBatch runs continuous batching on device tensors (devicetest)
// through joins, leaves, shifts and compactions of a short cache, greedy
// (tokens picked on the device) and sampled (logits read back), windowed
// rings included: every sequence must get the CPU's tokens.
func TestDeviceBatch(t *testing.T) {
	for _, kind := range []string{"llama", "window"} {
		for _, greedy := range []bool{true, false} {
			t.Run(fmt.Sprint(kind, "/greedy-", greedy), func(t *testing.T) {
				run := func(be tensor.Backend) ([]seqOut, int, int) {
					m := testModel(t, kind)
					g := New(m, be, byteDecoder{})
					const capacity = 24
					var reqs []SeqRequest
					for i := range 12 {
						p := make([]int32, 1+(i*7)%10)
						for j := range p {
							p[j] = int32(1 + (i*31+j*17)%250)
						}
						r := SeqRequest{Prompt: p, MaxTokens: 3 + (i*5)%(capacity-len(p)-2), Seed: uint64(i)}
						if !greedy {
							r.Sampling = Sampling{Temperature: 0.9, TopK: 40}
						}
						reqs = append(reqs, r)
					}
					b, err := g.NewBatch(3, capacity)
					if err != nil {
						t.Fatal(err)
					}
					defer b.Close()
					b.compactMin = 4
					seqs := make([]*Seq, 0, len(reqs))
					for steps := 0; len(seqs) < len(reqs) || b.Running() > 0; steps++ {
						if len(seqs) < len(reqs) && b.Free() > 0 && steps%3 != 1 {
							got, err := b.Join(reqs[len(seqs)])
							if err != nil {
								t.Fatal(err)
							}
							seqs = append(seqs, got...)
						}
						if err := b.Step(); err != nil {
							t.Fatal(err)
						}
						if steps > 2000 {
							t.Fatal("the batch never drains")
						}
					}
					out := make([]seqOut, len(seqs))
					for i, s := range seqs {
						out[i] = seqOut{s.IDs(), s.Text(), s.Finish()}
					}
					return out, b.shifts, b.compactions
				}
				want, _, _ := run(tensor.NewCPU(1))
				got, shifts, compactions := run(devicetest.New(1))
				if shifts == 0 || compactions == 0 {
					t.Fatalf("%d shifts, %d compactions: the test exercises neither", shifts, compactions)
				}
				if d := cmp.Diff(want, got); d != "" {
					t.Errorf("(-cpu +device):\n%s", d)
				}
			})
		}
	}
}
