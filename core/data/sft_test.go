package data

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"llmlab/core/chat"
	"llmlab/core/data/datatest"
)

// masked renders an example as text with the trained tokens in ⟦ ⟧.
func masked(e Example) string {
	var enc datatest.ByteEncoder
	var b strings.Builder
	in := false
	for i, id := range e.IDs {
		tr := e.Labels[i] != IgnoreIndex
		if tr && e.Labels[i] != id {
			return "label differs from id"
		}
		if tr != in {
			if tr {
				b.WriteString("⟦")
			} else {
				b.WriteString("⟧")
			}
			in = tr
		}
		b.WriteString(enc.Decode([]int32{id}))
	}
	if in {
		b.WriteString("⟧")
	}
	return b.String()
}

func mustRead(t *testing.T, s string) *Dataset {
	t.Helper()
	ds, err := ReadJSONL(strings.NewReader(s), "t.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	return ds
}

func TestBuildSFTMasks(t *testing.T) {
	const chatLine = `{"messages":[{"role":"system","content":"S"},{"role":"user","content":"Q1"},{"role":"assistant","content":"A1"},{"role":"user","content":"Q2"},{"role":"assistant","content":"A2"}]}`
	tests := []struct {
		name string
		in   string
		o    BuildOpts
		enc  datatest.ByteEncoder
		want string
	}{
		{"chat chatml: EOS after each answer", chatLine, BuildOpts{Template: chat.ChatML}, datatest.ByteEncoder{},
			"<s><|im_start|>system\nS<|im_end|>\n<|im_start|>user\nQ1<|im_end|>\n<|im_start|>assistant\n⟦A1<|im_end|></s>⟧\n<|im_start|>user\nQ2<|im_end|>\n<|im_start|>assistant\n⟦A2<|im_end|></s>⟧\n"},
		{"chat zephyr: template already ends turns with EOS", chatLine, BuildOpts{Template: chat.Zephyr}, datatest.ByteEncoder{NoBOS: true},
			"<|system|>\nS</s>\n<|user|>\nQ1</s>\n<|assistant|>\n⟦A1</s>⟧\n<|user|>\nQ2</s>\n<|assistant|>\n⟦A2</s>⟧\n"},
		{"chat llama3 NoEOS: BOS from the template only", chatLine, BuildOpts{Template: chat.Llama3, NoEOS: true}, datatest.ByteEncoder{},
			"<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nS<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nQ1<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n⟦A1<|eot_id|>⟧<|start_header_id|>user<|end_header_id|>\n\nQ2<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n⟦A2<|eot_id|>⟧"},
		{"prompt completion plain", `{"prompt":"2+2=","completion":"4"}`, BuildOpts{Template: chat.Plain}, datatest.ByteEncoder{NoBOS: true},
			"2+2=\n⟦4</s>⟧\n"},
		{"prompt completion: only the completion trains", `{"prompt":[{"role":"user","content":"q"},{"role":"assistant","content":"shot"},{"role":"user","content":"q2"}],"completion":"r"}`, BuildOpts{Template: chat.Plain}, datatest.ByteEncoder{NoBOS: true, NoEOS: true},
			"q\nshot\nq2\n⟦r⟧\n"},
		{"train all", `{"prompt":"p","completion":"c"}`, BuildOpts{Template: chat.Plain, TrainAll: true}, datatest.ByteEncoder{NoBOS: true},
			"⟦p\nc</s>\n⟧"},
		{"alpaca", `{"instruction":"Add","input":"2 3","output":"5"}`, BuildOpts{Template: chat.Alpaca}, datatest.ByteEncoder{NoBOS: true},
			chat.AlpacaPreamble + "\n\n### Instruction:\nAdd\n\n2 3\n\n### Response:\n⟦5</s>⟧\n\n"},
		{"text trains everything", `{"text":"hi"}`, BuildOpts{Template: chat.ChatML}, datatest.ByteEncoder{},
			"⟦<s>hi</s>⟧"},
		{"kto trains its completion", `{"prompt":"p","completion":"c","label":false}`, BuildOpts{Template: chat.Gemma}, datatest.ByteEncoder{},
			"<bos><start_of_turn>user\np<end_of_turn>\n<start_of_turn>model\n⟦c<end_of_turn></s>⟧\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			exs, rep, err := BuildSFT(tc.enc, mustRead(t, tc.in), tc.o)
			if err != nil {
				t.Fatal(err)
			}
			if len(exs) != 1 || rep.Examples != 1 {
				t.Fatalf("%d examples, report %v", len(exs), rep)
			}
			if d := cmp.Diff(tc.want, masked(exs[0])); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
}

func TestBuildSFTTruncateAndNoLoss(t *testing.T) {
	in := strings.Join([]string{
		`{"messages":[{"role":"user","content":"short"},{"role":"assistant","content":"ok"}]}`,
		`{"messages":[{"role":"user","content":"a very long question that fills the context"},{"role":"assistant","content":"late"}]}`,
		`{"messages":[{"role":"system","content":"s"},{"role":"user","content":"no answer"}]}`,
		`{"messages":[{"role":"user","content":"q"},{"role":"assistant","content":"a long answer cut"}]}`,
	}, "\n")
	exs, rep, err := BuildSFT(datatest.ByteEncoder{NoBOS: true}, mustRead(t, in), BuildOpts{Template: chat.Plain, Ctx: 8})
	if err != nil {
		t.Fatal(err)
	}
	if len(exs) != 2 || rep.Truncated != 4 || rep.Examples != 2 {
		t.Errorf("%d examples, report %+v; want 2 kept, 4 truncated (dropped ones included)", len(exs), rep)
	}
	for _, e := range exs {
		if len(e.IDs) > 8 {
			t.Errorf("example of %d tokens > ctx 8", len(e.IDs))
		}
	}
	if len(rep.NoLoss) != 2 || rep.NoLoss[0].Line != 2 || rep.NoLoss[1].Line != 3 {
		t.Fatalf("no-loss report %+v, want lines 2 and 3", rep.NoLoss)
	}
	if !strings.Contains(rep.NoLoss[0].Why, "past ctx 8") || !strings.Contains(rep.NoLoss[1].Why, "no assistant message") {
		t.Errorf("reasons %q, %q", rep.NoLoss[0].Why, rep.NoLoss[1].Why)
	}
}

// A conversation whose roles do not alternate, for a template that needs
// it, is an error naming file and line.
func TestBuildSFTRoleError(t *testing.T) {
	in := `{"messages":[{"role":"user","content":"a"},{"role":"assistant","content":"b"}]}` + "\n" +
		`{"messages":[{"role":"user","content":"a"},{"role":"user","content":"b"},{"role":"assistant","content":"c"}]}`
	_, _, err := BuildSFT(datatest.ByteEncoder{}, mustRead(t, in), BuildOpts{Template: chat.Llama2})
	var re *chat.RoleError
	if err == nil || !strings.HasPrefix(err.Error(), "t.jsonl:2: ") || !errors.As(err, &re) || re.Index != 1 {
		t.Fatalf("error %v; want t.jsonl:2 and a *chat.RoleError at message 1", err)
	}
	if _, _, err := BuildSFT(datatest.ByteEncoder{}, mustRead(t, in), BuildOpts{Template: chat.ChatML}); err != nil {
		t.Errorf("ChatML needs no alternation: %v", err)
	}
}

func TestBuildPairsAndKTO(t *testing.T) {
	in := `{"prompt":[{"role":"user","content":"q"},{"role":"assistant","content":"x"},{"role":"user","content":"q2"}],"chosen":"yes","rejected":"no"}`
	ds := mustRead(t, in)
	enc := datatest.ByteEncoder{NoBOS: true}
	pairs, rep, err := BuildPairs(enc, ds, BuildOpts{Template: chat.Plain, TrainAll: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(pairs) != 1 || rep.Examples != 1 {
		t.Fatalf("%d pairs", len(pairs))
	}
	if got, want := masked(pairs[0].Chosen), "q\nx</s>\nq2\n⟦yes</s>⟧\n"; got != want {
		t.Errorf("chosen %q, want %q (prompt turns never trained, even with TrainAll)", got, want)
	}
	if got, want := masked(pairs[0].Rejected), "q\nx</s>\nq2\n⟦no</s>⟧\n"; got != want {
		t.Errorf("rejected %q, want %q", got, want)
	}
	kto, _, err := BuildKTO(enc, ds, BuildOpts{Template: chat.Plain})
	if err != nil || len(kto) != 2 || !kto[0].Desirable || kto[1].Desirable {
		t.Fatalf("KTO from pairs: %v, %+v", err, kto)
	}
	if _, _, err := BuildPairs(enc, mustRead(t, `{"text":"a"}`), BuildOpts{}); err == nil || !strings.Contains(err.Error(), "t.jsonl is a text dataset") {
		t.Errorf("pairs from text: %v", err)
	}
}

func TestEncodePrompt(t *testing.T) {
	// History assistant turns get EOS as in training.
	ids, err := EncodePrompt(datatest.ByteEncoder{NoBOS: true}, chat.Plain, []chat.Message{u("q"), a("x"), u("q2")})
	if got, want := (datatest.ByteEncoder{}).Decode(ids), "q\nx</s>\nq2\n"; err != nil || got != want {
		t.Errorf("got %q, %v; want %q", got, err, want)
	}
	ids, err = EncodePrompt(datatest.ByteEncoder{NoBOS: true}, chat.ChatML, []chat.Message{u("hi")})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := (datatest.ByteEncoder{}).Decode(ids), "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"; got != want {
		t.Errorf("got %q want %q", got, want)
	}
}
