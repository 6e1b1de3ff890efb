package serve

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"llmlab/core/model"
	"llmlab/core/tensor"
	"llmlab/rlhf"
)

// shiftTok is a byte tokenizer rotated so that token 0 is the letter 'A'.
type shiftTok struct{}

func (shiftTok) Encode(s string, _ bool) []int32 {
	out := make([]int32, len(s))
	for i := range len(s) {
		out[i] = int32((int(s[i]) + 256 - 'A') % 256)
	}
	return out
}
func (shiftTok) Decode(ids []int32) string {
	b := make([]byte, 0, len(ids))
	for _, id := range ids {
		if id < 256 {
			b = append(b, byte((int(id)+'A')%256))
		}
	}
	return string(b)
}
func (shiftTok) EOS() int32 { return 256 }

// TestHTTPJudgeAgainstServe runs rlhf.HTTPJudge against this package's real
// server. The model's final norm is zeroed, so every logit is 0 and greedy
// decoding answers token 0, "A", whatever it is shown: a judge with a pure
// position bias. Asked in both orders, it must come out a tie.
func TestHTTPJudgeAgainstServe(t *testing.T) {
	cfg, err := model.ParseConfig([]byte(`{"model_type":"llama","vocab_size":257,"hidden_size":32,"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,"intermediate_size":48,"max_position_embeddings":2048}`))
	if err != nil {
		t.Fatal(err)
	}
	m, err := model.New(cfg, 1)
	if err != nil {
		t.Fatal(err)
	}
	for i := range m.NormF.W.Value.F32 {
		m.NormF.W.Value.F32[i] = 0
	}
	s := New(Config{ModelID: "tiny-judge", Model: m, Tok: shiftTok{}, Backend: tensor.NewCPU(1), MaxBody: 1 << 20,
		Chat: func(msgs []Message) (string, []string, error) {
			var b strings.Builder
			for _, m := range msgs {
				fmt.Fprintf(&b, "<%s>%s\n", m.Role, m.Content)
			}
			b.WriteString("<assistant>")
			return b.String(), []string{"\n"}, nil
		}})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.Shutdown(ctx)
		<-done
	})
	base := "http://" + l.Addr().String()

	cache, err := rlhf.OpenVerdictCache(filepath.Join(t.TempDir(), "cache.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer cache.Close()
	j := &rlhf.HTTPJudge{URL: base, Model: "tiny-judge", Rubric: rlhf.DefaultRubric, MaxTokens: 1, Concurrency: 2, Cache: cache}
	ctx := context.Background()
	v, err := j.Compare(ctx, "What is 2+2?", "4", "5")
	if err != nil {
		t.Fatal(err)
	}
	if v.Winner != rlhf.Tie || v.PA != 0.5 || v.Raw != [2]string{"A", "A"} {
		t.Errorf("verdict %+v; want a tie from replies A and A", v)
	}
	if st := j.Stats(); st.Calls != 2 || st.CacheHits != 0 {
		t.Errorf("stats %+v; want 2 calls", st)
	}
	// The same question again is answered from the cache.
	if _, err := j.Compare(ctx, "What is 2+2?", "4", "5"); err != nil {
		t.Fatal(err)
	}
	if st := j.Stats(); st.Calls != 2 || st.CacheHits != 2 {
		t.Errorf("stats %+v; want 2 calls and 2 cache hits", st)
	}

	// A wrong model name is the server's 400: reported at once, not retried.
	bad := &rlhf.HTTPJudge{URL: base + "/v1", Model: "other", MaxTokens: 1}
	_, err = bad.Compare(ctx, "p", "a", "b")
	if err == nil || !strings.Contains(err.Error(), "HTTP 400") || !strings.Contains(err.Error(), `"other" does not exist`) {
		t.Errorf("err = %v", err)
	}
	if st := bad.Stats(); st.Retries != 0 || st.Calls > 2 {
		t.Errorf("a 400 was retried: %+v", st)
	}
}
