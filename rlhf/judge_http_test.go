package rlhf

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// fakeJudge is an OpenAI-compatible server whose answer is a function of
// the two answers in the order shown and how often that question was asked.
type fakeJudge struct {
	mu       sync.Mutex
	asked    map[[2]string]int // (first, second) -> requests
	temps    []float64
	inFlight int
	maxIn    int
	delay    time.Duration
	answer   func(first, second string, n int) (status int, reply string)
	calls    atomic.Int64
}

// shown pulls the two answers out of a question made by JudgeQuestion.
func shown(q string) (first, second string) {
	_, rest, _ := strings.Cut(q, "[Answer A]\n")
	first, rest, _ = strings.Cut(rest, "\n\n[Answer B]\n")
	second, _, _ = strings.Cut(rest, "\n\nWhich answer")
	return first, second
}

func (f *fakeJudge) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.calls.Add(1)
	if r.URL.Path != "/v1/chat/completions" {
		http.Error(w, "wrong path "+r.URL.Path, http.StatusNotFound)
		return
	}
	var req chatRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || len(req.Messages) != 1 {
		http.Error(w, `{"error":{"message":"bad request body"}}`, http.StatusBadRequest)
		return
	}
	first, second := shown(req.Messages[0].Content)
	f.mu.Lock()
	if f.asked == nil {
		f.asked = map[[2]string]int{}
	}
	n := f.asked[[2]string{first, second}]
	f.asked[[2]string{first, second}]++
	f.temps = append(f.temps, req.Temperature)
	f.inFlight++
	f.maxIn = max(f.maxIn, f.inFlight)
	f.mu.Unlock()
	if f.delay > 0 {
		time.Sleep(f.delay)
	}
	status, reply := f.answer(first, second, n)
	f.mu.Lock()
	f.inFlight--
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if status != http.StatusOK {
		if status == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", "2")
		}
		w.WriteHeader(status)
		fmt.Fprintf(w, `{"error":{"message":%q,"type":"test"}}`, reply)
		return
	}
	json.NewEncoder(w).Encode(map[string]any{
		"object":  "chat.completion",
		"choices": []any{map[string]any{"index": 0, "message": map[string]any{"role": "assistant", "content": reply}}},
	})
}

func (f *fakeJudge) times(first, second string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.asked[[2]string{first, second}]
}

// prefers answers containing "good", whatever the order.
func prefersGood(first, second string, _ int) (int, string) {
	if strings.Contains(first, "good") {
		return 200, "A"
	}
	return 200, "The better one is **B**."
}

func newFake(t *testing.T, f *fakeJudge) (*HTTPJudge, *[]time.Duration) {
	t.Helper()
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	var mu sync.Mutex
	waits := &[]time.Duration{}
	j := &HTTPJudge{URL: srv.URL, Model: "judge", Backoff: 10 * time.Millisecond, Timeout: 5 * time.Second}
	j.sleep = func(ctx context.Context, d time.Duration) error {
		mu.Lock()
		*waits = append(*waits, d)
		mu.Unlock()
		return ctx.Err()
	}
	return j, waits
}

func TestHTTPJudgeAsksBothOrders(t *testing.T) {
	f := &fakeJudge{answer: prefersGood}
	j, _ := newFake(t, f)
	for _, tc := range []struct {
		a, b   string
		winner Choice
		pa     float64
	}{
		{"a good answer", "a bad answer", ChoiceA, 1},
		{"a bad answer", "a good answer", ChoiceB, 0},
	} {
		v, err := j.Compare(context.Background(), "Which?", tc.a, tc.b)
		if err != nil {
			t.Fatal(err)
		}
		if v.Winner != tc.winner || v.PA != tc.pa {
			t.Errorf("Compare(%q, %q) = %v (PA %v), want %v (PA %v); raw %q", tc.a, tc.b, v.Winner, v.PA, tc.winner, tc.pa, v.Raw)
		}
	}
	// Each comparison asked each order exactly once.
	for _, p := range [][2]string{{"a good answer", "a bad answer"}, {"a bad answer", "a good answer"}} {
		if n := f.times(p[0], p[1]); n != 2 {
			t.Errorf("order %q asked %d times over two comparisons, want 2", p, n)
		}
	}
	if s := j.Stats(); s.Calls != 4 || s.CacheHits != 0 || s.Retries != 0 {
		t.Errorf("stats %+v", s)
	}
}

func TestHTTPJudgePositionBiasIsATie(t *testing.T) {
	f := &fakeJudge{answer: func(_, _ string, _ int) (int, string) { return 200, "A" }}
	j, _ := newFake(t, f)
	v, err := j.Compare(context.Background(), "p", "one", "two")
	if err != nil {
		t.Fatal(err)
	}
	want := Verdict{Winner: Tie, PA: 0.5, PFirst: [2]float64{1, 1}, Raw: [2]string{"A", "A"}}
	if d := cmp.Diff(want, v); d != "" {
		t.Errorf("(-want +got)\n%s", d)
	}
}

func TestHTTPJudgeMalformedReplies(t *testing.T) {
	t.Run("retried then reported", func(t *testing.T) {
		f := &fakeJudge{answer: func(first, _ string, _ int) (int, string) {
			if first == "x" {
				return 200, "I cannot decide between them."
			}
			return 200, "B"
		}}
		j, _ := newFake(t, f)
		_, err := j.Compare(context.Background(), "p", "x", "y")
		var me *MalformedReplyError
		if !errors.As(err, &me) || me.Tries != 3 || !strings.Contains(err.Error(), `"I cannot decide between them."`) || !strings.Contains(err.Error(), "asked 3 times") {
			t.Fatalf("err = %v; want the reply quoted and 3 tries", err)
		}
		if n := f.times("x", "y"); n != 3 {
			t.Errorf("malformed order asked %d times, want 3 (1 + MalformedRetries 2)", n)
		}
	})
	t.Run("retried then answered", func(t *testing.T) {
		f := &fakeJudge{answer: func(first, _ string, n int) (int, string) {
			if n == 0 {
				return 200, "Both are fine."
			}
			if first == "good" {
				return 200, "A"
			}
			return 200, "B"
		}}
		j, _ := newFake(t, f)
		v, err := j.Compare(context.Background(), "p", "good", "bad")
		if err != nil {
			t.Fatal(err)
		}
		if v.Winner != ChoiceA {
			t.Errorf("winner %v, raw %q", v.Winner, v.Raw)
		}
		slices.Sort(f.temps)
		if d := cmp.Diff([]float64{0, 0, 0.7, 0.7}, f.temps); d != "" {
			t.Errorf("temperatures (-want +got)\n%s", d)
		}
		if s := j.Stats(); s.Calls != 4 || s.Retries != 2 {
			t.Errorf("stats %+v", s)
		}
	})
}

func TestHTTPJudgeRetries(t *testing.T) {
	t.Run("503 with backoff", func(t *testing.T) {
		f := &fakeJudge{answer: func(first, _ string, n int) (int, string) {
			if n < 2 {
				return 503, "overloaded"
			}
			if first == "good" {
				return 200, "A"
			}
			return 200, "B"
		}}
		j, waits := newFake(t, f)
		v, err := j.Compare(context.Background(), "p", "good", "bad")
		if err != nil {
			t.Fatal(err)
		}
		if v.Winner != ChoiceA {
			t.Errorf("winner %v", v.Winner)
		}
		slices.Sort(*waits)
		ms := time.Millisecond
		if d := cmp.Diff([]time.Duration{10 * ms, 10 * ms, 20 * ms, 20 * ms}, *waits); d != "" {
			t.Errorf("waits (-want +got)\n%s", d)
		}
		if s := j.Stats(); s.Calls != 6 || s.Retries != 4 {
			t.Errorf("stats %+v", s)
		}
	})
	t.Run("429 honours Retry-After", func(t *testing.T) {
		f := &fakeJudge{answer: func(_, _ string, n int) (int, string) {
			if n == 0 {
				return 429, "slow down"
			}
			return 200, "A"
		}}
		j, waits := newFake(t, f)
		if _, err := j.Compare(context.Background(), "p", "a", "b"); err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff([]time.Duration{2 * time.Second, 2 * time.Second}, *waits); d != "" {
			t.Errorf("waits (-want +got)\n%s", d)
		}
	})
	t.Run("503 gives up", func(t *testing.T) {
		f := &fakeJudge{answer: func(_, _ string, _ int) (int, string) { return 503, "down for maintenance" }}
		j, _ := newFake(t, f)
		j.Retries = 2
		_, err := j.Compare(context.Background(), "p", "a", "b")
		var he *HTTPError
		if !errors.As(err, &he) || he.Status != 503 || !strings.Contains(err.Error(), "down for maintenance") || !strings.Contains(err.Error(), "after 3 tries") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("400 not retried", func(t *testing.T) {
		f := &fakeJudge{answer: func(_, _ string, _ int) (int, string) { return 400, "the model \"judge\" does not exist" }}
		j, waits := newFake(t, f)
		_, err := j.Compare(context.Background(), "p", "a", "b")
		var he *HTTPError
		if !errors.As(err, &he) || he.Status != 400 || !strings.Contains(err.Error(), `does not exist`) {
			t.Fatalf("err = %v", err)
		}
		if len(*waits) != 0 || f.times("a", "b") > 1 || f.times("b", "a") > 1 {
			t.Errorf("a 400 was retried: waits %v, asked %d and %d", *waits, f.times("a", "b"), f.times("b", "a"))
		}
	})
	t.Run("connection refused", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		j, waits := newFake(t, &fakeJudge{})
		j.URL, j.Retries = "http://"+addr+"/v1", 3
		_, err = j.Compare(context.Background(), "p", "a", "b")
		if err == nil || !strings.Contains(err.Error(), "after 4 tries") {
			t.Fatalf("err = %v", err)
		}
		if len(*waits) < 3 {
			t.Errorf("waits %v", *waits)
		}
	})
}

func TestHTTPJudgeConcurrencyLimit(t *testing.T) {
	f := &fakeJudge{answer: prefersGood, delay: 20 * time.Millisecond}
	j, _ := newFake(t, f)
	j.Concurrency = 3
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = j.Compare(context.Background(), "p", fmt.Sprintf("good %d", i), fmt.Sprintf("bad %d", i))
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if f.maxIn > 3 {
		t.Errorf("%d requests in flight at once, limit 3", f.maxIn)
	}
	if f.maxIn < 2 {
		t.Errorf("only %d request in flight at once: no concurrency at all", f.maxIn)
	}
	if n := f.calls.Load(); n != 16 {
		t.Errorf("%d requests, want 16", n)
	}
}

func TestHTTPJudgeCacheSurvivesRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cache.jsonl")
	pairs := [][2]string{{"good 1", "bad 1"}, {"bad 2", "good 2"}, {"good 3", "bad 3"}}

	f := &fakeJudge{answer: prefersGood}
	j, _ := newFake(t, f)
	c, err := OpenVerdictCache(path)
	if err != nil {
		t.Fatal(err)
	}
	j.Cache, j.Rubric = c, "Be fair."
	var first []Verdict
	for _, p := range pairs {
		v, err := j.Compare(context.Background(), "p", p[0], p[1])
		if err != nil {
			t.Fatal(err)
		}
		first = append(first, v)
	}
	if s := j.Stats(); s.Calls != 6 || s.CacheHits != 0 {
		t.Fatalf("first run stats %+v", s)
	}
	// A crash mid-write leaves a torn last line; no Close either.
	fh, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	fh.WriteString(`{"key":"0123","reply":"A","p_fi`)
	fh.Close()

	c2, err := OpenVerdictCache(path)
	if err != nil {
		t.Fatal(err)
	}
	if c2.Len() != 6 || c2.Dropped != 1 {
		t.Fatalf("reloaded %d entries, dropped %d; want 6 and 1", c2.Len(), c2.Dropped)
	}
	dead := &fakeJudge{answer: func(_, _ string, _ int) (int, string) {
		t.Error("the judge was asked a cached question")
		return 500, "no"
	}}
	j2, _ := newFake(t, dead)
	j2.Cache, j2.Rubric = c2, "Be fair."
	for i, p := range pairs {
		v, err := j2.Compare(context.Background(), "p", p[0], p[1])
		if err != nil {
			t.Fatal(err)
		}
		if d := cmp.Diff(first[i], v); d != "" {
			t.Errorf("pair %d from the cache (-first +cached)\n%s", i, d)
		}
	}
	if s := j2.Stats(); s.Calls != 0 || s.CacheHits != 6 {
		t.Errorf("restarted stats %+v; want 0 calls and 6 hits", s)
	}
	// A new question is asked, appended after the cut, and reloads cleanly.
	j2.Rubric = "Be strict."
	dead.answer = prefersGood
	if _, err := j2.Compare(context.Background(), "p", "good", "bad"); err != nil {
		t.Fatal(err)
	}
	if err := c2.Close(); err != nil {
		t.Fatal(err)
	}
	c3, err := OpenVerdictCache(path)
	if err != nil {
		t.Fatal(err)
	}
	defer c3.Close()
	if c3.Len() != 8 || c3.Dropped != 0 {
		t.Errorf("after append: %d entries, %d dropped; want 8 and 0", c3.Len(), c3.Dropped)
	}
}

func TestVerdictCacheDamage(t *testing.T) {
	dir := t.TempDir()
	t.Run("bad middle line is an error", func(t *testing.T) {
		path := filepath.Join(dir, "bad.jsonl")
		os.WriteFile(path, []byte("{\"key\":\"a\",\"reply\":\"A\",\"p_first\":1}\nnot json\n{\"key\":\"b\",\"reply\":\"B\",\"p_first\":0}\n"), 0o644)
		_, err := OpenVerdictCache(path)
		if err == nil || !strings.Contains(err.Error(), "bad.jsonl:2") {
			t.Fatalf("err = %v; want the file and line 2", err)
		}
	})
	t.Run("whole last line without newline is kept", func(t *testing.T) {
		path := filepath.Join(dir, "nonl.jsonl")
		os.WriteFile(path, []byte(`{"key":"a","reply":"A","p_first":1}`), 0o644)
		c, err := OpenVerdictCache(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Put(CacheEntry{Key: "b", Reply: "B"}); err != nil {
			t.Fatal(err)
		}
		c.Close()
		c, err = OpenVerdictCache(path)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, ok := c.Get("a"); !ok || c.Len() != 2 {
			t.Errorf("%d entries", c.Len())
		}
	})
}

func TestCacheKey(t *testing.T) {
	k := CacheKey("m", "r", "p", "a", "b")
	for _, other := range []string{
		CacheKey("m", "r", "p", "b", "a"), // order matters
		CacheKey("m2", "r", "p", "a", "b"),
		CacheKey("m", "r2", "p", "a", "b"),
		CacheKey("m", "r", "pa", "", "b"), // no ambiguity across fields
	} {
		if other == k {
			t.Errorf("key collision: %s", k)
		}
	}
	if k != CacheKey("m", "r", "p", "a", "b") || len(k) != 64 {
		t.Errorf("key %q not stable or not hex SHA-256", k)
	}
}

func TestParseReplyChoice(t *testing.T) {
	for _, tc := range []struct {
		reply string
		want  Choice
		ok    bool
	}{
		{"A", ChoiceA, true},
		{"B", ChoiceB, true},
		{" b", Tie, false},
		{"**B**", ChoiceB, true},
		{"(A).", ChoiceA, true},
		{"Answer: B", ChoiceB, true},
		{"ABBA", Tie, false},
		{"Both are fine", Tie, false},
		{"B2 or A", ChoiceA, true},
		{"", Tie, false},
	} {
		got, ok := ParseReplyChoice(tc.reply)
		if got != tc.want || ok != tc.ok {
			t.Errorf("ParseReplyChoice(%q) = %v, %v; want %v, %v", tc.reply, got, ok, tc.want, tc.ok)
		}
	}
}

func TestCombineOrders(t *testing.T) {
	for _, tc := range []struct {
		name     string
		pAB, pBA float64
		winner   Choice
		pa       float64
	}{
		{"both say a", 1, 0, ChoiceA, 1},
		{"both say b", 0, 1, ChoiceB, 0},
		{"always first", 1, 1, Tie, 0.5},
		{"always second", 0, 0, Tie, 0.5},
		{"soft agreement", 0.8, 0.3, ChoiceA, 0.75},
		{"agree but near half", 0.53, 0.49, Tie, 0.52},
		{"one order undecided", 0.5, 0.1, Tie, 0.7},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := CombineOrders(tc.pAB, tc.pBA, 0.05)
			if v.Winner != tc.winner || abs64(v.PA-tc.pa) > 1e-12 {
				t.Errorf("CombineOrders(%v, %v) = %v PA %v; want %v PA %v", tc.pAB, tc.pBA, v.Winner, v.PA, tc.winner, tc.pa)
			}
		})
	}
}

func abs64(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}
