package rlhf

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"llmlab/core/chat"
	"llmlab/core/data"
)

func TestJudgeQuestionRef(t *testing.T) {
	// The question without a reference, byte for byte as it was before
	// references existed: judges tuned on it and caches keyed by it stay
	// valid.
	const noRef = "Be fair.\n\n[Question]\nWhat is 2 plus 2?\n\n[Answer A]\n5\n\n[Answer B]\n4\n\nWhich answer is better, A or B? Answer with one letter."
	const withRef = "Be fair.\n\n[Question]\nWhat is 2 plus 2?\n\n[Reference answer]\n4\n\n[Answer A]\n5\n\n[Answer B]\n4\n\nWhich answer is better, A or B? Answer with one letter."
	for _, tc := range []struct {
		name string
		got  string
		want string
	}{
		{"JudgeQuestion", JudgeQuestion("Be fair.", "What is 2 plus 2?", "5", "4"), noRef},
		{"empty reference", JudgeQuestionRef("Be fair.", "What is 2 plus 2?", "", "5", "4"), noRef},
		{"white space reference", JudgeQuestionRef("Be fair.", "What is 2 plus 2?", " \n ", "5", "4"), noRef},
		{"reference", JudgeQuestionRef("Be fair.", "What is 2 plus 2?", "4", "5", "4"), withRef},
		{"reference trimmed", JudgeQuestionRef(" Be fair.\n", "What is 2 plus 2?\n", "\n4 ", " 5", "4\n"), withRef},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if d := cmp.Diff(tc.want, tc.got); d != "" {
				t.Errorf("(-want +got)\n%s", d)
			}
		})
	}
}

func TestCacheKeyRef(t *testing.T) {
	if got, want := CacheKeyRef("m", "r", "p", "", "a", "b"), CacheKey("m", "r", "p", "a", "b"); got != want {
		t.Errorf("no reference: key %s, want CacheKey's %s (old caches must still answer)", got, want)
	}
	if got, want := CacheKeyRef("m", "r", "p", " \n", "a", "b"), CacheKey("m", "r", "p", "a", "b"); got != want {
		t.Errorf("white space reference: key %s, want CacheKey's %s (the question is the same)", got, want)
	}
	k := CacheKeyRef("m", "r", "p", "ref", "a", "b")
	if k != CacheKeyRef("m", "r", "p", "ref", "a", "b") || len(k) != 64 {
		t.Errorf("key %q not stable or not hex SHA-256", k)
	}
	for name, other := range map[string]string{
		"no reference":       CacheKey("m", "r", "p", "a", "b"),
		"other reference":    CacheKeyRef("m", "r", "p", "ref2", "a", "b"),
		"order":              CacheKeyRef("m", "r", "p", "ref", "b", "a"),
		"model":              CacheKeyRef("m2", "r", "p", "ref", "a", "b"),
		"rubric":             CacheKeyRef("m", "r2", "p", "ref", "a", "b"),
		"reference in first": CacheKeyRef("m", "r", "p", "re", "fa", "b"),
		"prompt in ref":      CacheKeyRef("m", "r", "pr", "ef", "a", "b"),
		// The old key's fields with the reference spliced in as a prompt.
		"field count": CacheKey("m", "r", "p", "ref", "a"),
	} {
		if other == k {
			t.Errorf("%s: key collision %s", name, k)
		}
	}
}

// refServer is an OpenAI-compatible judge that prefers the answer equal
// to the question's reference answer (A when there is none), and records
// the questions it was sent.
type refServer struct {
	mu        sync.Mutex
	questions []string
}

func (s *refServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var req chatRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || len(req.Messages) != 1 {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	q := req.Messages[0].Content
	s.mu.Lock()
	s.questions = append(s.questions, q)
	s.mu.Unlock()
	reply := "A"
	if _, rest, ok := strings.Cut(q, "[Reference answer]\n"); ok {
		ref, _, _ := strings.Cut(rest, "\n\n")
		if first, _ := shown(q); first != ref {
			reply = "B"
		}
	}
	json.NewEncoder(w).Encode(map[string]any{
		"choices": []any{map[string]any{"message": map[string]any{"role": "assistant", "content": reply}}},
	})
}

func TestHTTPJudgeReference(t *testing.T) {
	s := &refServer{}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	c, err := OpenVerdictCache(filepath.Join(t.TempDir(), "cache.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	j := &HTTPJudge{URL: srv.URL, Model: "judge", Rubric: "R", Cache: c}
	ctx := context.Background()
	for _, tc := range []struct {
		ref    string
		winner Choice
	}{
		{"4", ChoiceB}, // "4" is shown second in (5, 4) and first in (4, 5)
		{"5", ChoiceA}, // the same answers, another reference: asked, not cached
		{"4", ChoiceB}, // from the cache
		{"", Tie},      // no reference: the server says A in both orders
		{"six", Tie},   // neither matches: B in both orders
	} {
		v, err := j.CompareRef(ctx, "What is 2 plus 2?", tc.ref, "5", "4")
		if err != nil {
			t.Fatal(err)
		}
		if v.Winner != tc.winner {
			t.Errorf("reference %q: winner %v, want %v (raw %q)", tc.ref, v.Winner, tc.winner, v.Raw)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.questions) != 8 {
		t.Fatalf("%d questions sent, want 8 (4 comparisons asked, 1 answered from the cache)", len(s.questions))
	}
	if want := JudgeQuestionRef("R", "What is 2 plus 2?", "4", "5", "4"); s.questions[0] != want && s.questions[1] != want {
		t.Errorf("the first comparison's questions %q do not include\n%q", s.questions[:2], want)
	}
	for _, q := range s.questions[4:6] {
		if strings.Contains(q, "[Reference answer]") {
			t.Errorf("a question without a reference has a reference section:\n%s", q)
		}
	}
	if st := j.Stats(); st.CacheHits != 2 {
		t.Errorf("stats %+v; want 2 cache hits (the repeated comparison)", st)
	}
}

func TestLocalJudgeReference(t *testing.T) {
	j := tinyJudge(t)
	ctx := context.Background()
	prompt, x, y := "What is 2+2?", "4", "It is five, I think."
	v, err := j.Compare(ctx, prompt, x, y)
	if err != nil {
		t.Fatal(err)
	}
	v0, err := j.CompareRef(ctx, prompt, "", x, y)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(v, v0); d != "" {
		t.Errorf("CompareRef with no reference differs from Compare (-Compare +CompareRef)\n%s", d)
	}
	r, err := j.CompareRef(ctx, prompt, "4", x, y)
	if err != nil {
		t.Fatal(err)
	}
	if r.PFirst == v.PFirst {
		t.Errorf("the reference changed nothing: P(first) %v both times", r.PFirst)
	}
	// Each order's probability is a forward pass over the question with
	// the reference, alone.
	for k, pair := range [2][2]string{{x, y}, {y, x}} {
		ids, err := data.EncodePrompt(byteEnc{}, chat.ChatML, []chat.Message{{Role: chat.RoleUser, Content: JudgeQuestionRef(j.Rubric, prompt, "4", pair[0], pair[1])}})
		if err != nil {
			t.Fatal(err)
		}
		logits, err := j.lastLogits([][]int32{ids})
		if err != nil {
			t.Fatal(err)
		}
		la, lb := float64(logits['A']), float64(logits['B'])
		want := 1 / (1 + math.Exp(lb-la))
		if math.Abs(r.PFirst[k]-want) > 1e-5 {
			t.Errorf("order %d: P(first) %.6f in the batch, %.6f alone", k, r.PFirst[k], want)
		}
	}
	if _, err := j.CompareRef(ctx, prompt, strings.Repeat("x", 2000), x, y); err == nil || !strings.Contains(err.Error(), fmt.Sprint(j.M.Cfg.MaxPos)) {
		t.Errorf("a reference too long for the context: err = %v", err)
	}
}
