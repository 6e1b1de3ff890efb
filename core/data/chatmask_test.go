package data

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"llmlab/core/chat"
	"llmlab/core/data/datatest"
)

// pairEncoder merges "ab" into one token (id 1000) over ByteEncoder, so a
// token can straddle a segment boundary.
type pairEncoder struct{ datatest.ByteEncoder }

func (p pairEncoder) Encode(text string, addSpecial bool) []int32 {
	var out []int32
	for _, id := range p.ByteEncoder.Encode(text, addSpecial) {
		if n := len(out); n > 0 && out[n-1] == 'a' && id == 'b' {
			out[n-1] = 1000
			continue
		}
		out = append(out, id)
	}
	return out
}

func TestEncodeJoined(t *testing.T) {
	for _, tc := range []struct {
		name      string
		enc       Encoder
		segs      []chat.Segment
		wantIDs   []int32
		wantTrain []bool
	}{
		{"boundaries between tokens", datatest.ByteEncoder{}, []chat.Segment{{Text: "x<|im_start|>"}, {Text: "y<|im_end|>", Train: true}, {Text: "\n"}},
			[]int32{'x', 258, 'y', 259, '\n'}, []bool{false, false, true, true, false}},
		{"a token across a boundary goes after it", pairEncoder{}, []chat.Segment{{Text: "ca"}, {Text: "bd", Train: true}},
			[]int32{'c', 1000, 'd'}, []bool{false, true, true}},
		{"no second BOS", datatest.ByteEncoder{}, []chat.Segment{{Text: "<s>q"}, {Text: "a", Train: true}},
			[]int32{256, 'q', 'a'}, []bool{false, false, true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ids, train := EncodeJoined(tc.enc, tc.segs)
			if diff := cmp.Diff(tc.wantIDs, ids); diff != "" {
				t.Errorf("ids (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantTrain, train); diff != "" {
				t.Errorf("train (-want +got):\n%s", diff)
			}
		})
	}
}

// TestBuildSFTModelTemplate trains on the spans of a Jinja template's own
// text: the answers and their end markers, no EOS appended, and only the
// completion's turns for preference pairs.
func TestBuildSFTModelTemplate(t *testing.T) {
	m, err := chat.Compile("{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] | trim + '<|im_end|>\\n' }}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}", chat.Specials{EOS: "<|im_end|>"})
	if err != nil {
		t.Fatal(err)
	}
	const line = `{"messages":[{"role":"user","content":"Q1"},{"role":"assistant","content":" A1 "},{"role":"user","content":"Q2"},{"role":"assistant","content":"A2"}]}`
	exs, _, err := BuildSFT(datatest.ByteEncoder{}, mustRead(t, line), BuildOpts{Chat: m})
	if err != nil {
		t.Fatal(err)
	}
	want := "<|im_start|>user\nQ1<|im_end|>\n<|im_start|>assistant\n⟦A1<|im_end|>⟧\n<|im_start|>user\nQ2<|im_end|>\n<|im_start|>assistant\n⟦A2<|im_end|>⟧\n"
	if diff := cmp.Diff(want, masked(exs[0])); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}

	const pair = `{"prompt":[{"role":"user","content":"Q"},{"role":"assistant","content":"A"},{"role":"user","content":"Q2"}],"chosen":[{"role":"assistant","content":"good"}],"rejected":[{"role":"assistant","content":"bad"}]}`
	ps, _, err := BuildPairs(datatest.ByteEncoder{}, mustRead(t, pair), BuildOpts{Chat: m})
	if err != nil {
		t.Fatal(err)
	}
	want = "<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\nA<|im_end|>\n<|im_start|>user\nQ2<|im_end|>\n<|im_start|>assistant\n⟦bad<|im_end|>⟧\n"
	if diff := cmp.Diff(want, masked(ps[0].Rejected)); diff != "" {
		t.Errorf("rejected (-want +got):\n%s", diff)
	}

	ids, err := EncodeModelPrompt(datatest.ByteEncoder{}, m, []chat.Message{{Role: "user", Content: "Q"}})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := (datatest.ByteEncoder{}).Decode(ids), "<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\n"; got != want {
		t.Errorf("EncodeModelPrompt = %q, want %q", got, want)
	}
}
