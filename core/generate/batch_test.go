package generate

import (
	"context"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"

	"llmlab/core/autograd"
	"llmlab/core/model"
	"llmlab/core/tensor"
)

// testConfigs are the small models the batch tests decode with: the two
// layouts, and a Mistral whose sliding window (5) is shorter than the
// sequences, so its layers keep rings of keys that rows move through.
var testConfigs = map[string]string{
	"gpt2":   `{"model_type":"gpt2","vocab_size":257,"n_embd":32,"n_layer":2,"n_head":4,"n_positions":64}`,
	"llama":  `{"model_type":"llama","vocab_size":257,"hidden_size":32,"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,"intermediate_size":48,"max_position_embeddings":64}`,
	"window": `{"model_type":"mistral","vocab_size":257,"hidden_size":32,"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,"intermediate_size":48,"max_position_embeddings":64,"sliding_window":5}`,
}

// testModel returns a small model (testConfigs) with weights large
// enough that greedy choices are not near-ties.
func testModel(t *testing.T, kind string) *model.Transformer {
	t.Helper()
	cfg, err := model.ParseConfig([]byte(testConfigs[kind]))
	if err != nil {
		t.Fatal(err)
	}
	m, err := model.New(cfg, 11)
	if err != nil {
		t.Fatal(err)
	}
	for p := range m.Params() {
		for i := range p.Value.F32 {
			p.Value.F32[i] *= 20
		}
	}
	return m
}

type seqOut struct {
	IDs    []int32
	Text   string
	Finish string
}

// TestContinuousBatchEqualsAlone: sequences that join a running batch at
// different steps, each with its own sampling, seed, stops and length,
// leave when done and have their slots reused, get exactly the tokens
// each gets generated alone; a sequence cancelled midway changes nothing
// for the others.
func TestContinuousBatchEqualsAlone(t *testing.T) {
	reqs := []SeqRequest{
		{Prompt: []int32{72, 101, 108}, MaxTokens: 12},
		{Prompt: []int32{5, 6, 7, 8, 9, 10, 11}, MaxTokens: 9, Sampling: Sampling{Temperature: 0.9, TopK: 20}, Seed: 7},
		{Prompt: []int32{200}, MaxTokens: 15, Sampling: Sampling{Temperature: 1.2, TopP: 0.9}, Seed: 3},
		{Prompt: []int32{40, 41}, MaxTokens: 6, Sampling: Sampling{Temperature: 0.7, MinP: 0.05, RepetitionPenalty: 1.3}, Seed: 99},
		{Prompt: []int32{1, 2, 3, 4}, MaxTokens: 20, Sampling: Sampling{Temperature: 1}, Seed: 5, StopStrings: []string{"e"}},
		{Prompt: []int32{100, 90, 80, 70, 60}, MaxTokens: 4, StopIDs: []int32{7}},
		{Prompt: []int32{33}, MaxTokens: 11, Sampling: Sampling{Temperature: 1.5, TopK: 50, TopP: 0.95}, Seed: 12},
	}
	for _, kind := range []string{"gpt2", "llama", "window"} {
		t.Run(kind, func(t *testing.T) {
			m := testModel(t, kind)
			g := New(m, tensor.NewCPU(2), byteDecoder{})
			want := make([]seqOut, len(reqs))
			for i, r := range reqs {
				res, err := g.Generate(context.Background(), Request{Prompts: [][]int32{r.Prompt}, MaxTokens: r.MaxTokens,
					Sampling: r.Sampling, Seed: r.Seed, StopIDs: r.StopIDs, StopStrings: r.StopStrings})
				if err != nil {
					t.Fatal(err)
				}
				want[i] = seqOut{res.IDs[0], res.Text[0], res.Finish[0]}
			}

			b, err := g.NewBatch(3, m.Cfg.MaxPos)
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			streamed := make([]string, len(reqs))
			seqs := make([]*Seq, len(reqs))
			// A sequence that is cancelled after three tokens.
			victim, err := b.Join(SeqRequest{Prompt: []int32{9, 9, 9}, MaxTokens: 30, Sampling: Sampling{Temperature: 1}, Seed: 1})
			if err != nil {
				t.Fatal(err)
			}
			next, steps := 0, 0
			for next < len(reqs) || b.Running() > 0 {
				// Join one sequence every other step while a slot is free.
				if next < len(reqs) && b.Free() > 0 && steps%2 == 0 {
					i := next
					r := reqs[i]
					r.OnText = func(s string) bool { streamed[i] += s; return true }
					got, err := b.Join(r)
					if err != nil {
						t.Fatal(err)
					}
					seqs[i] = got[0]
					next++
				}
				if len(victim[0].IDs()) == 3 {
					b.Cancel(victim[0])
				}
				if err := b.Step(); err != nil {
					t.Fatal(err)
				}
				steps++
				if steps > 500 {
					t.Fatal("the batch never drains")
				}
			}
			if !victim[0].Cancelled() {
				t.Errorf("the cancelled sequence finished with %q", victim[0].Finish())
			}
			for i, s := range seqs {
				got := seqOut{s.IDs(), s.Text(), s.Finish()}
				if diff := cmp.Diff(want[i], got); diff != "" {
					t.Errorf("request %d: batched differs from alone (-alone +batched):\n%s", i, diff)
				}
				if streamed[i] != s.Text() {
					t.Errorf("request %d streamed %q, text %q", i, streamed[i], s.Text())
				}
			}
		})
	}
}

// TestBatchShiftAndCompact: in a short cache, longer prompts move the
// running rows right and the end reaching the capacity (or unused columns
// piling up) moves them left, many times over, and every sequence still
// gets what it gets alone.
func TestBatchShiftAndCompact(t *testing.T) {
	for _, kind := range []string{"llama", "window"} {
		for _, early := range []int{64, 4} {
			t.Run(fmt.Sprint(kind, "/compact-min-", early), func(t *testing.T) { shiftAndCompact(t, kind, early) })
		}
	}
}

func shiftAndCompact(t *testing.T, kind string, compactMin int) {
	m := testModel(t, kind)
	g := New(m, tensor.NewCPU(2), byteDecoder{})
	const capacity = 24
	var reqs []SeqRequest
	for i := range 30 {
		p := make([]int32, 1+(i*7)%10)
		for j := range p {
			p[j] = int32(1 + (i*31+j*17)%250)
		}
		reqs = append(reqs, SeqRequest{Prompt: p, MaxTokens: 3 + (i*5)%(capacity-len(p)-2),
			Sampling: Sampling{Temperature: 0.9, TopK: 40}, Seed: uint64(i)})
	}
	b, err := g.NewBatch(3, capacity)
	if err != nil {
		t.Fatal(err)
	}
	b.compactMin = compactMin
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
	b.Close()
	if b.shifts == 0 || b.compactions == 0 {
		t.Fatalf("%d shifts, %d compactions: the test exercises neither", b.shifts, b.compactions)
	}
	for i, r := range reqs {
		res, err := g.Generate(context.Background(), Request{Prompts: [][]int32{r.Prompt}, MaxTokens: r.MaxTokens, Sampling: r.Sampling, Seed: r.Seed})
		if err != nil {
			t.Fatal(err)
		}
		want := seqOut{res.IDs[0], res.Text[0], res.Finish[0]}
		got := seqOut{seqs[i].IDs(), seqs[i].Text(), seqs[i].Finish()}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("request %d: batched differs from alone (-alone +batched):\n%s", i, diff)
		}
	}
	t.Logf("%d shifts, %d compactions", b.shifts, b.compactions)
}

// TestBatchJoinErrors: a full batch, an empty prompt and a prompt longer
// than the capacity are refused without disturbing the batch.
func TestBatchJoinErrors(t *testing.T) {
	m := testModel(t, "llama")
	g := New(m, tensor.NewCPU(1), byteDecoder{})
	b, err := g.NewBatch(1, 8)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Join(SeqRequest{Prompt: nil}); err == nil {
		t.Error("an empty prompt joined")
	}
	if _, err := b.Join(SeqRequest{Prompt: make([]int32, 8)}); err == nil {
		t.Error("a prompt of the whole capacity joined")
	}
	if _, err := b.Join(SeqRequest{Prompt: []int32{1}, MaxTokens: 50}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Join(SeqRequest{Prompt: []int32{1}}); err == nil {
		t.Error("a second sequence joined a batch of one slot")
	}
	for b.Running() > 0 {
		if err := b.Step(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := g.NewBatch(0, 8); err == nil {
		t.Error("a batch of no slots")
	}
	if _, err := g.NewBatch(2, 65); err == nil {
		t.Error("a batch longer than the context")
	}
}

// TestBatchStepAllocs: a decode step of a full batch allocates no more
// than the model's forward pass of the same shape (the decoder's own
// bookkeeping and every sampler allocate nothing once warm; no tokenizer,
// so no text is made).
func TestBatchStepAllocs(t *testing.T) {
	m := testModel(t, "llama")
	g := New(m, tensor.NewCPU(1), nil)
	b, err := g.NewBatch(3, m.Cfg.MaxPos)
	if err != nil {
		t.Fatal(err)
	}
	samplings := []Sampling{{}, {Temperature: 1, TopK: 10, TopP: 0.9}, {Temperature: 0.8, MinP: 0.1, RepetitionPenalty: 1.2}}
	for i, sm := range samplings {
		if _, err := b.Join(SeqRequest{Prompt: []int32{int32(i + 1), 2, 3}, MaxTokens: 60, Sampling: sm}); err != nil {
			t.Fatal(err)
		}
	}
	for range 3 {
		b.Step()
	}
	step := testing.AllocsPerRun(20, func() {
		if err := b.Step(); err != nil {
			t.Fatal(err)
		}
	})
	if b.Running() != 3 {
		t.Fatalf("%d running, want 3", b.Running())
	}
	// The same forward pass alone, on a cache of the same shape.
	c := m.NewCache(3, m.Cfg.MaxPos)
	tape := g.tape
	in := model.Inputs{B: 3, T: 1, IDs: []int32{1, 2, 3}, Pos: []int32{5, 9, 7}, Seg: []int32{1, 1, 1}, Cache: c}
	forward := testing.AllocsPerRun(20, func() {
		tape.Reset()
		c.Len = 9
		h, err := m.Hidden(tape, in)
		if err != nil {
			t.Fatal(err)
		}
		m.Logits(tape, h)
	})
	// sync.Pool refills in the CPU kernels make either count vary by a few.
	if step > forward+4 {
		t.Errorf("a decode step allocates %v times, its forward pass %v", step, forward)
	}
	row := make([]float32, m.Cfg.VocabSize)
	ctx := []int32{1, 2, 3, 4, 5}
	for _, sm := range samplings {
		s := NewSampler(sm, 1)
		if n := testing.AllocsPerRun(20, func() { s.Sample(row, ctx) }); n > 0 {
			t.Errorf("sampling with %+v allocates %v times a token", sm, n)
		}
	}
}

// TestWindowedGreedyEqualsRecompute: greedy decoding through the batch's
// ring caches gives the tokens a full forward pass over the whole
// sequence gives at every step (no cache; the window as a mask), past the
// window many times over.
func TestWindowedGreedyEqualsRecompute(t *testing.T) {
	m := testModel(t, "window")
	cpu := tensor.NewCPU(1)
	g := New(m, cpu, byteDecoder{})
	prompt := []int32{3, 14, 15, 92, 65, 35}
	res, err := g.Generate(context.Background(), Request{Prompts: [][]int32{prompt}, MaxTokens: 30})
	if err != nil {
		t.Fatal(err)
	}
	seq := append([]int32(nil), prompt...)
	tape := autograd.NewTape(cpu)
	var want []int32
	for range res.IDs[0] {
		tape.Reset()
		pos := make([]int32, len(seq))
		for i := range pos {
			pos[i] = int32(i)
		}
		h, err := m.Hidden(tape, model.Inputs{B: 1, T: len(seq), IDs: seq, Pos: pos})
		if err != nil {
			t.Fatal(err)
		}
		logits := m.Logits(tape, lastRows(tape, h, 1, len(seq))).Value.F32
		id := argmax(logits)
		want = append(want, id)
		seq = append(seq, id)
	}
	if diff := cmp.Diff(want, res.IDs[0]); diff != "" {
		t.Errorf("greedy ids (-recomputed +cached):\n%s", diff)
	}
}
