package model

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"llmlab/core/autograd"
	"llmlab/core/checkpoint"
	"llmlab/core/tensor"
	"llmlab/core/tensor/devicetest"
	"llmlab/core/tensor/tensortest"
)

type familyBatch struct {
	IDs     [][]int32 `json:"ids"`
	Targets [][]int32 `json:"targets"`
	Prompt  []int32   `json:"prompt"`
}

// TestFamilies checks every family case written by
// tools/golden/families.py (an independent PyTorch reference of each HF
// family): logits, loss (1e-4 relative), every gradient of the f32 cases,
// and 12 greedy ids, decoded through the KV cache where the RoPE table
// does not depend on the length (else by recomputing the whole prefix,
// as the reference does).
func TestFamilies(t *testing.T) {
	cases, _ := filepath.Glob("testdata/golden/families/*/expected.safetensors")
	if len(cases) == 0 {
		t.Fatal("no family golden cases (run make golden)")
	}
	for _, exp := range cases {
		dir := filepath.Dir(exp)
		t.Run(filepath.Base(dir), func(t *testing.T) { checkFamily(t, dir) })
	}
}

func checkFamily(t *testing.T, dir string) {
	m, err := Load(dir, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var fb familyBatch
	data, err := os.ReadFile(filepath.Join(dir, "batch.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &fb); err != nil {
		t.Fatal(err)
	}
	want, err := checkpoint.Open(filepath.Join(dir, "expected.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer want.Close()
	has := map[string]bool{}
	for _, n := range want.Names() {
		has[n] = true
	}
	get := func(name string) []float32 {
		x, err := want.Tensor(name)
		if err != nil {
			t.Fatalf("expected.safetensors: %v", err)
		}
		return x.Float32s()
	}
	B, T := len(fb.IDs), len(fb.IDs[0])
	in := Inputs{B: B, T: T, IDs: flatIDs(fb.IDs)}
	targets := flatIDs(fb.Targets)
	tp := autograd.NewTape(tensor.NewCPU(2))
	logits, err := m.Forward(tp, in)
	if err != nil {
		t.Fatal(err)
	}
	tensortest.Close(t, "logits", logits.Value.F32, get("logits"), 1e-4)
	loss, _, err := m.Loss(tp, in, targets)
	if err != nil {
		t.Fatal(err)
	}
	tensortest.Close(t, "loss", loss.Value.F32, get("loss"), 1e-4)
	if has["grad.model.embed_tokens.weight"] {
		if err := tp.Backward(loss); err != nil {
			t.Fatal(err)
		}
		for _, p := range m.ParamList() {
			tensortest.Close(t, "grad "+p.Name, p.Grad.F32, get("grad."+p.Name), 1e-3)
		}
	}
	wantIDs := toInt32(get("greedy"))
	recompute := m.Cfg.Rope.Kind == RopeDynamic || m.Cfg.Rope.Kind == RopeLongRoPE
	if got := greedy(t, m, fb.Prompt, len(wantIDs), recompute); !slices.Equal(got, wantIDs) {
		t.Errorf("greedy ids (-want +got):\n%s", cmp.Diff(wantIDs, got))
	}
	// transformers' own generate on the same folder, through its KV
	// cache (tools/golden/families_transformers.py --write, run where
	// transformers is installed): llmlab's cached decoding must give its
	// ids, also where they differ from the recomputed ones (longrope).
	//
	// Not for longrope yet: there llmlab's cached decoding gives the ids of
	// the recomputing reference and of a reference where each key keeps
	// the factors of the pass that made it (short below the trained
	// length, long from it, as transformers switches), while transformers
	// 5.17's generate departs from the 6th id on. Its logits for the whole
	// batch agree (families_transformers.py), so the difference is in how
	// its cache and the factor switch meet; it is an open question.
	if m.Cfg.Rope.Kind == RopeLongRoPE {
		return
	}
	if raw, err := os.ReadFile(filepath.Join(dir, "transformers.json")); err == nil {
		var tf struct {
			Version string  `json:"transformers"`
			Greedy  []int32 `json:"greedy"`
		}
		if err := json.Unmarshal(raw, &tf); err != nil {
			t.Fatalf("transformers.json: %v", err)
		}
		if got := greedy(t, m, fb.Prompt, len(tf.Greedy), false); !slices.Equal(got, tf.Greedy) {
			t.Errorf("cached greedy ids against transformers %s (-want +got):\n%s", tf.Version, cmp.Diff(tf.Greedy, got))
		}
	}
}

func toInt32(x []float32) []int32 {
	out := make([]int32, len(x))
	for i, v := range x {
		out[i] = int32(v)
	}
	return out
}

// greedy appends n argmax ids to prompt: through a KV cache, or by running
// the whole sequence again for every token.
func greedy(t *testing.T, m *Transformer, prompt []int32, n int, recompute bool) []int32 {
	t.Helper()
	tp := autograd.NewTape(tensor.NewCPU(1))
	tp.NoGrad = true
	seq := slices.Clone(prompt)
	var cache *Cache
	if !recompute {
		cache = m.NewCache(1, len(prompt)+n)
	}
	next := seq
	for range n {
		tp.Reset()
		in := Inputs{B: 1, T: len(seq), IDs: seq}
		if cache != nil {
			in = Inputs{B: 1, T: len(next), IDs: next, Cache: cache}
		}
		logits, err := m.Forward(tp, in)
		if err != nil {
			t.Fatal(err)
		}
		V := m.Cfg.VocabSize
		last := logits.Value.F32[len(logits.Value.F32)-V:]
		best := 0
		for i, v := range last {
			if v > last[best] {
				best = i
			}
		}
		seq = append(seq, int32(best))
		next = []int32{int32(best)}
	}
	return seq[len(prompt):]
}

// TestLossChunks checks that the chunked loss (the path large vocabularies
// take) gives the unchunked loss and gradients, on a family with a final
// softcap and tied embeddings.
func TestLossChunks(t *testing.T) {
	dir := "testdata/golden/families/gemma2"
	var fb familyBatch
	data, err := os.ReadFile(filepath.Join(dir, "batch.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &fb); err != nil {
		t.Fatal(err)
	}
	in := Inputs{B: len(fb.IDs), T: len(fb.IDs[0]), IDs: flatIDs(fb.IDs)}
	targets := flatIDs(fb.Targets)
	run := func(chunk int, ckpt bool) (float32, map[string][]float32) {
		m, err := Load(dir, LoadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		m.LossChunkRows, m.CheckpointBlocks = chunk, ckpt
		tp := autograd.NewTape(tensor.NewCPU(2))
		loss, _, err := m.Loss(tp, in, targets)
		if err != nil {
			t.Fatal(err)
		}
		if err := tp.Backward(loss); err != nil {
			t.Fatal(err)
		}
		grads := map[string][]float32{}
		for _, p := range m.ParamList() {
			grads[p.Name] = p.Grad.F32
		}
		return loss.Value.F32[0], grads
	}
	wantLoss, wantGrads := run(1<<20, false)
	for _, chunk := range []int{1, 5, 7} {
		// With activation checkpointing too: blocks and loss chunks share
		// the checkpoint tape.
		loss, grads := run(chunk, chunk == 5)
		tensortest.Close(t, "loss", []float32{loss}, []float32{wantLoss}, 1e-6)
		for name, g := range grads {
			tensortest.Close(t, "grad "+name, g, wantGrads[name], 1e-5)
		}
	}
}

// TestFamilySaveRoundTrip saves every family case and loads it back: the
// same config, every tensor bit for bit under its HF name (so (1+w) norms
// and fused projections are written as read), the same logits.
func TestFamilySaveRoundTrip(t *testing.T) {
	cases, _ := filepath.Glob("testdata/golden/families/*/config.json")
	for _, cf := range cases {
		dir := filepath.Dir(cf)
		t.Run(filepath.Base(dir), func(t *testing.T) {
			m, err := Load(dir, LoadOptions{KeepStored: true})
			if err != nil {
				t.Fatal(err)
			}
			out := t.TempDir()
			dt := m.Embed.Value.DType
			if err := m.Save(out, SaveOptions{DType: dt}); err != nil {
				t.Fatal(err)
			}
			back, err := Load(out, LoadOptions{KeepStored: true})
			if err != nil {
				t.Fatal(err)
			}
			want := m.Cfg
			want.raw, want.Rope.raw, want.Multimodal = nil, nil, false
			got := back.Cfg
			got.raw, got.Rope.raw = nil, nil
			if diff := cmp.Diff(want, got, cmp.AllowUnexported(Config{}, RopeScaling{})); diff != "" {
				t.Errorf("config after save (-want +got):\n%s", diff)
			}
			stored, err := checkpoint.Open(filepath.Join(dir, "model.safetensors"))
			if err != nil {
				t.Fatal(err)
			}
			defer stored.Close()
			saved, err := checkpoint.Open(filepath.Join(out, "model.safetensors"))
			if err != nil {
				t.Fatal(err)
			}
			defer saved.Close()
			for _, p := range m.ParamList() {
				a, err := saved.Tensor(p.Name)
				if err != nil {
					t.Fatal(err)
				}
				var b *tensor.Tensor
				for _, sn := range storedNames(m.Cfg, p.Name) {
					if b, err = stored.Tensor(sn); err == nil {
						break
					}
				}
				if b == nil {
					t.Fatalf("%s: not in the golden file", p.Name)
				}
				if !slices.Equal(a.Bytes(), b.Bytes()) {
					t.Errorf("%s: saved bytes differ from the file's", p.Name)
				}
			}
		})
	}
}

// TestWindowedCache checks the ring cache of windowed layers far past the
// window: decoding through it gives what recomputing the whole sequence
// gives, chunks of several tokens after cached ones included, and the
// windowed layers hold only Window rows.
func TestWindowedCache(t *testing.T) {
	for _, name := range []string{"mistral_window", "gemma3", "gemma2"} {
		t.Run(name, func(t *testing.T) {
			m, err := Load(filepath.Join("testdata/golden/families", name), LoadOptions{})
			if err != nil {
				t.Fatal(err)
			}
			prompt := []int32{5, 17, 200, 3, 99, 42}
			const n = 40
			want := greedy(t, m, prompt, n, true)
			if got := greedy(t, m, prompt, n, false); !slices.Equal(got, want) {
				t.Fatalf("cached greedy ids (-recomputed +cached):\n%s", cmp.Diff(want, got))
			}
			// Prefill in chunks (6, then 5 of the generated ids), then
			// one token: the logits equal a full pass over the sequence.
			seq := append(slices.Clone(prompt), want[:6]...)
			kc := m.NewCache(1, len(seq)+1)
			windowed := 0
			for l, ring := range kc.Ring {
				if ring {
					windowed++
					if kc.K[l].Shape[1] != m.Cfg.SlidingWindow {
						t.Fatalf("layer %d: ring of %d rows, want %d", l, kc.K[l].Shape[1], m.Cfg.SlidingWindow)
					}
				}
			}
			if windowed == 0 {
				t.Fatal("no windowed layer")
			}
			tp := autograd.NewTape(tensor.NewCPU(1))
			tp.NoGrad = true
			var last *autograd.Var
			for _, part := range [][]int32{seq[:6], seq[6:11], seq[11:]} {
				last, err = m.Forward(tp, Inputs{B: 1, T: len(part), IDs: part, Cache: kc})
				if err != nil {
					t.Fatal(err)
				}
			}
			tf := autograd.NewTape(tensor.NewCPU(1))
			tf.NoGrad = true
			full, err := m.Forward(tf, Inputs{B: 1, T: len(seq), IDs: seq})
			if err != nil {
				t.Fatal(err)
			}
			V := m.Cfg.VocabSize
			tensortest.Close(t, "last logits", last.Value.F32[len(last.Value.F32)-V:], full.Value.F32[len(full.Value.F32)-V:], 1e-5)

			// The same chunks on device tensors (the cache and the step's
			// tensors in a backend's own memory, the ring moved by strided
			// device copies): the CPU's logits, bit for bit.
			md, err := Load(filepath.Join("testdata/golden/families", name), LoadOptions{})
			if err != nil {
				t.Fatal(err)
			}
			dev := devicetest.New(1)
			kd := md.NewCache(1, len(seq)+1)
			kd.ToDevice(dev)
			td := autograd.NewTape(dev)
			td.NoGrad = true
			for _, part := range [][]int32{seq[:6], seq[6:11], seq[11:]} {
				td.Reset()
				if last, err = md.Forward(td, Inputs{B: 1, T: len(part), IDs: part, Cache: kd}); err != nil {
					t.Fatal(err)
				}
			}
			gotLogits := last.Value.Host().F32
			tp2 := autograd.NewTape(tensor.NewCPU(1))
			tp2.NoGrad = true
			kc2 := m.NewCache(1, len(seq)+1)
			for _, part := range [][]int32{seq[:6], seq[6:11], seq[11:]} {
				tp2.Reset()
				if last, err = m.Forward(tp2, Inputs{B: 1, T: len(part), IDs: part, Cache: kc2}); err != nil {
					t.Fatal(err)
				}
			}
			if !slices.Equal(gotLogits, last.Value.F32) {
				t.Errorf("chunked logits on device tensors differ from the CPU's")
			}
			if st := dev.Stats(); st.HostArgs != 0 {
				t.Errorf("%d host tensors given to device ops", st.HostArgs)
			}
		})
	}
}

// TestFamilyPresets: every preset writes a config.json the loader reads
// back to the same config, and a model of it (shrunk to a few layers and a
// small vocabulary, the family kept) runs forward.
func TestFamilyPresets(t *testing.T) {
	for _, name := range PresetNames() {
		t.Run(name, func(t *testing.T) {
			c, err := Preset(Llama, name)
			if err != nil {
				t.Fatal(err)
			}
			js, err := c.JSON()
			if err != nil {
				t.Fatal(err)
			}
			back, err := ParseConfig(js)
			if err != nil {
				t.Fatalf("%v\n%s", err, js)
			}
			back.raw, back.Rope.raw = nil, nil
			if diff := cmp.Diff(c, back, cmp.AllowUnexported(Config{}, RopeScaling{})); diff != "" {
				t.Errorf("config after JSON (-preset +read):\n%s", diff)
			}
			// Shrink: 2 layers, a small vocabulary and hidden size.
			s := c
			s.VocabSize, s.Layers, s.MaxPos = 64, 2, 32
			s.Hidden, s.Intermediate = 16*s.Heads/s.KVHeads, 24
			if s.Sliding != nil {
				s.Sliding, s.SlidingWindow = []bool{true, false}, 4
			}
			if s.NoRope != nil {
				s.NoRope = []bool{false, true}
			}
			s.HeadDim = 16
			if s.Rope.Kind == RopeLongRoPE {
				s.Rope.ShortFactor, s.Rope.LongFactor = s.Rope.ShortFactor[:s.RotaryDim()/2], s.Rope.LongFactor[:s.RotaryDim()/2]
				s.Rope.OrigMaxPos = 8
			}
			m, err := New(s, 1)
			if err != nil {
				t.Fatal(err)
			}
			tp := autograd.NewTape(tensor.NewCPU(1))
			ids := []int32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}
			loss, _, err := m.Loss(tp, Inputs{B: 1, T: 12, IDs: ids}, append(ids[1:], -1))
			if err != nil {
				t.Fatal(err)
			}
			if l := loss.Value.F32[0]; !(l > 3 && l < 5.5) {
				t.Errorf("initial loss %v, want about ln(64) = 4.16", l)
			}
		})
	}
}

// TestLossChunkMemory: with a large vocabulary the loss never holds the
// (rows x V) logits: the step's activation arena stays well below them,
// forward and backward.
func TestLossChunkMemory(t *testing.T) {
	cfg, err := ParseConfig([]byte(`{"model_type":"qwen3","vocab_size":150000,"hidden_size":16,"num_hidden_layers":1,
		"num_attention_heads":2,"num_key_value_heads":1,"head_dim":8,"intermediate_size":16,"max_position_embeddings":64,
		"tie_word_embeddings":true}`))
	if err != nil {
		t.Fatal(err)
	}
	m, err := New(cfg, 1)
	if err != nil {
		t.Fatal(err)
	}
	const T = 64
	ids := make([]int32, T)
	for i := range ids {
		ids[i] = int32(i * 2311 % cfg.VocabSize)
	}
	peak := func(chunk int) (int, float32) {
		m.LossChunkRows = chunk
		for _, p := range m.ParamList() {
			p.Grad = nil
		}
		tp := autograd.NewTape(tensor.NewCPU(1))
		loss, _, err := m.Loss(tp, Inputs{B: 1, T: T, IDs: ids}, append(ids[1:], -1))
		if err != nil {
			t.Fatal(err)
		}
		if err := tp.Backward(loss); err != nil {
			t.Fatal(err)
		}
		return tp.ArenaFloats(), loss.Value.F32[0]
	}
	full, lossFull := peak(T)
	chunked, lossChunked := peak(4)
	logits := (T - 1) * cfg.VocabSize
	t.Logf("arena: %d floats unchunked, %d in chunks of 4 rows (logits: %d)", full, chunked, logits)
	if full < logits {
		t.Fatalf("unchunked arena %d holds less than the logits %d: the measure is wrong", full, logits)
	}
	if chunked > logits/4 {
		t.Errorf("chunked arena %d floats, want well below the %d logits", chunked, logits)
	}
	tensortest.Close(t, "loss", []float32{lossChunked}, []float32{lossFull}, 1e-6)
}

// TestTokenNLLChunks: the per-token losses in chunks equal those of the
// whole logits, and so do the gradients of a weighted sum of them.
func TestTokenNLLChunks(t *testing.T) {
	dir := "testdata/golden/families/qwen3"
	var fb familyBatch
	data, err := os.ReadFile(filepath.Join(dir, "batch.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &fb); err != nil {
		t.Fatal(err)
	}
	in := Inputs{B: len(fb.IDs), T: len(fb.IDs[0]), IDs: flatIDs(fb.IDs)}
	targets := flatIDs(fb.Targets)
	weights := tensortest.Rand(3, len(targets), 1)
	run := func(chunk int) ([]float32, map[string][]float32) {
		m, err := Load(dir, LoadOptions{})
		if err != nil {
			t.Fatal(err)
		}
		m.LossChunkRows = chunk
		tp := autograd.NewTape(tensor.NewCPU(2))
		nll, err := m.TokenNLL(tp, in, targets)
		if err != nil {
			t.Fatal(err)
		}
		w := tp.Const(tensor.FromF32(weights, len(weights)))
		if err := tp.Backward(tp.SumScaled(tp.Mul(nll, w), 1)); err != nil {
			t.Fatal(err)
		}
		grads := map[string][]float32{}
		for _, p := range m.ParamList() {
			grads[p.Name] = p.Grad.F32
		}
		return slices.Clone(nll.Value.F32), grads
	}
	want, wantGrads := run(1 << 20)
	got, grads := run(5)
	tensortest.Close(t, "token losses", got, want, 1e-6)
	for name, g := range grads {
		tensortest.Close(t, "grad "+name, g, wantGrads[name], 1e-5)
	}
	if want[len(want)-1] != 0 {
		t.Errorf("an ignored target has loss %v", want[len(want)-1])
	}
}

// TestOffsetNormHalf: a Gemma model stored in F16 and kept so (as generate
// and PEFT bases load it) runs: its (1+w) norm weights are held in F32,
// and the logits match the same weights loaded as F32.
func TestOffsetNormHalf(t *testing.T) {
	for _, fam := range []string{"gemma2", "gemma3"} {
		t.Run(fam, func(t *testing.T) {
			m, err := Load(filepath.Join("testdata", "golden", "families", fam), LoadOptions{})
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			if err := m.Save(dir, SaveOptions{DType: tensor.F16}); err != nil {
				t.Fatal(err)
			}
			half, err := Load(dir, LoadOptions{KeepStored: true})
			if err != nil {
				t.Fatal(err)
			}
			if dt := half.Blocks[0].Q.(*Linear).W.Value.DType; dt != tensor.F16 {
				t.Fatalf("q_proj kept as %v, want F16", dt)
			}
			full, err := Load(dir, LoadOptions{})
			if err != nil {
				t.Fatal(err)
			}
			ids := []int32{3, 1, 4, 1, 5, 9, 2, 6}
			logits := func(m *Transformer) []float32 {
				tp := autograd.NewTape(tensor.NewCPU(1))
				l, err := m.Forward(tp, Inputs{B: 1, T: len(ids), IDs: ids})
				if err != nil {
					t.Fatal(err)
				}
				return append([]float32(nil), l.Value.F32...)
			}
			tensortest.Close(t, "logits", logits(half), logits(full), 1e-3)
		})
	}
}
