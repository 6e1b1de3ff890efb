package serve

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// answer is what a client makes of one completion, plain or streamed.
type answer struct {
	Status int
	Text   string
	Finish string
	Tokens int // completion tokens (plain answers only)
}

// complete sends body to /v1/completions (or chat) and reads the whole
// answer; a streamed answer must end with one finish chunk and [DONE].
func complete(ctx context.Context, base, path, body, key string) (answer, error) {
	req, err := http.NewRequestWithContext(ctx, "POST", base+path, strings.NewReader(body))
	if err != nil {
		return answer{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	a := answer{Status: resp.StatusCode}
	if resp.StatusCode != 200 {
		io.Copy(io.Discard, resp.Body)
		return a, nil
	}
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		var m struct {
			Choices []struct {
				Text         string `json:"text"`
				FinishReason string `json:"finish_reason"`
				Message      struct {
					Content string `json:"content"`
				} `json:"message"`
			} `json:"choices"`
			Usage struct {
				Completion int `json:"completion_tokens"`
			} `json:"usage"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
			return a, err
		}
		if len(m.Choices) != 1 {
			return a, fmt.Errorf("%d choices", len(m.Choices))
		}
		a.Text, a.Finish, a.Tokens = m.Choices[0].Text+m.Choices[0].Message.Content, m.Choices[0].FinishReason, m.Usage.Completion
		return a, nil
	}
	sc := bufio.NewScanner(resp.Body)
	done := 0
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			continue
		}
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok {
			return a, fmt.Errorf("bad SSE line %q", line)
		}
		if done > 0 {
			return a, fmt.Errorf("data after [DONE]: %q", line)
		}
		if data == "[DONE]" {
			done++
			continue
		}
		var c struct {
			Choices []struct {
				Text         string  `json:"text"`
				FinishReason *string `json:"finish_reason"`
				Delta        struct {
					Content string `json:"content"`
				} `json:"delta"`
			} `json:"choices"`
		}
		if err := json.Unmarshal([]byte(data), &c); err != nil {
			return a, fmt.Errorf("chunk %q: %w", data, err)
		}
		if a.Finish != "" {
			return a, fmt.Errorf("a chunk after the finish chunk: %q", data)
		}
		a.Text += c.Choices[0].Text + c.Choices[0].Delta.Content
		if f := c.Choices[0].FinishReason; f != nil {
			a.Finish = *f
		}
	}
	if err := sc.Err(); err != nil {
		return a, err
	}
	if done != 1 || a.Finish == "" {
		return a, fmt.Errorf("stream ended without a finish chunk and [DONE] (finish %q, done %d)", a.Finish, done)
	}
	return a, nil
}

// variedRequests are completions with their own sampling, seeds, stops,
// lengths and streaming.
func variedRequests() []string {
	var out []string
	for i := range 10 {
		stream := i%3 == 0
		switch i % 5 {
		case 0:
			out = append(out, fmt.Sprintf(`{"prompt":"Once %d","max_tokens":%d,"temperature":0,"stream":%v}`, i, 8+i, stream))
		case 1:
			out = append(out, fmt.Sprintf(`{"prompt":"abc","max_tokens":%d,"temperature":0.9,"top_k":20,"seed":%d,"stream":%v}`, 20+i, i, stream))
		case 2:
			out = append(out, fmt.Sprintf(`{"prompt":"The quick brown fox %d","max_tokens":15,"temperature":1.2,"top_p":0.9,"seed":%d,"stop":["e","q"],"stream":%v}`, i, 40+i, stream))
		case 3:
			out = append(out, fmt.Sprintf(`{"prompt":"x","max_tokens":12,"temperature":0.8,"min_p":0.05,"repetition_penalty":1.3,"seed":%d,"stream":%v}`, i, stream))
		case 4:
			out = append(out, fmt.Sprintf(`{"prompt":"hello hello","max_tokens":%d,"temperature":1,"seed":%d,"stream":%v}`, 5+2*i, 1000+i, stream))
		}
	}
	return out
}

// TestParallelEqualsAlone: requests decoded together, joining and leaving
// a running batch, get exactly what each gets alone (same seed, same
// tokens), streamed or not; more requests than slots wait their turn.
func TestParallelEqualsAlone(t *testing.T) {
	base, s := startServerWith(t, Config{Parallel: 4, QueueSize: 16})
	var maxRunning atomic.Int64 // after each scheduler pass
	s.onStep = func() {
		if n := s.running.Load(); n > maxRunning.Load() {
			maxRunning.Store(n)
		}
	}
	reqs := variedRequests()
	ctx := context.Background()
	alone := make([]answer, len(reqs))
	for i, body := range reqs {
		a, err := complete(ctx, base, "/v1/completions", body, "")
		if err != nil || a.Status != 200 {
			t.Fatalf("request %d alone: %v %+v", i, err, a)
		}
		alone[i] = a
	}
	// Hold the scheduler so every request is queued, then let them run:
	// four decode together and the rest join as slots free up.
	s.run.Lock()
	together := make([]answer, len(reqs))
	errs := make([]error, len(reqs))
	var wg sync.WaitGroup
	for i, body := range reqs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			together[i], errs[i] = complete(ctx, base, "/v1/completions", body, "")
		}()
	}
	deadline := time.Now().Add(10 * time.Second)
	for s.Stats().Queued < len(reqs)-1 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	maxRunning.Store(0)
	s.run.Unlock()
	wg.Wait()
	for i := range reqs {
		if errs[i] != nil {
			t.Fatalf("request %d together: %v", i, errs[i])
		}
		if diff := cmp.Diff(alone[i], together[i]); diff != "" {
			t.Errorf("request %d: together differs from alone (-alone +together):\n%s", i, diff)
		}
	}
	// A pass joins up to four of the ten queued requests (one may finish
	// in the pass that joins it).
	if n := maxRunning.Load(); n < 3 || n > 4 {
		t.Errorf("at most %d requests ran at once, want 4 (--parallel 4)", n)
	}
	waitIdle(t, s)
}

// waitIdle waits for the running and queued counts to return to zero and
// checks every submitted job ended exactly once.
func waitIdle(t *testing.T, s *Server) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		st := s.Stats()
		if st.Running == 0 && st.Queued == 0 && s.submitted.Load() == s.answered.Load()+s.abandoned.Load() {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("not idle: %+v; submitted %d, answered %d, abandoned %d", s.Stats(), s.submitted.Load(), s.answered.Load(), s.abandoned.Load())
}

// TestDisconnectFreesSlot: a streaming client that goes away leaves the
// batch at the next step, and its slot serves the next request.
func TestDisconnectFreesSlot(t *testing.T) {
	base, s := startServerWith(t, Config{Parallel: 1, QueueSize: 4})
	// Every scheduler pass waits for the test, so the request cannot
	// finish on its own while the test hangs up.
	steps := make(chan struct{})
	s.onStep = func() { <-steps }
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := complete(ctx, base, "/v1/completions", `{"prompt":"a","max_tokens":250,"temperature":0,"stream":true}`, "")
		done <- err
	}()
	deadline := time.Now().Add(10 * time.Second)
	for s.Stats().Running != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the request never started")
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("the client got %v, want its own cancellation", err)
	}
	// Let the scheduler run pass by pass until it drops the request.
	for s.abandoned.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the request was never dropped")
		}
		select {
		case steps <- struct{}{}:
		case <-time.After(10 * time.Millisecond):
		}
	}
	close(steps) // no more waiting
	waitIdle(t, s)
	if n, a := s.abandoned.Load(), s.answered.Load(); n != 1 || a != 0 {
		t.Fatalf("%d requests abandoned and %d answered, want the one whose client left abandoned", n, a)
	}
	a, err := complete(context.Background(), base, "/v1/completions", `{"prompt":"b","max_tokens":3,"temperature":0}`, "")
	if err != nil || a.Status != 200 {
		t.Fatalf("the next request: %v %+v", err, a)
	}
}

// TestAPIKeyAndHealth: with a key, every /v1 route needs it (401
// otherwise, OpenAI-shaped); /health answers without it.
func TestAPIKeyAndHealth(t *testing.T) {
	base, _ := startServerWith(t, Config{APIKey: "s3cret"})
	for _, tc := range []struct {
		name, method, path, auth string
		status                   int
	}{
		{"models without key", "GET", "/v1/models", "", 401},
		{"models wrong key", "GET", "/v1/models", "Bearer s3cre", 401},
		{"models not bearer", "GET", "/v1/models", "s3cret", 401},
		{"models with key", "GET", "/v1/models", "Bearer s3cret", 200},
		{"completions without key", "POST", "/v1/completions", "", 401},
		{"completions with key", "POST", "/v1/completions", "Bearer s3cret", 200},
		{"chat wrong key", "POST", "/v1/chat/completions", "Bearer nope", 401},
		{"unknown v1 route without key", "GET", "/v1/embeddings", "", 401},
		{"health without key", "GET", "/health", "", 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := `{"prompt":"hi","messages":[{"role":"user","content":"hi"}],"max_tokens":2,"temperature":0}`
			req, _ := http.NewRequest(tc.method, base+tc.path, strings.NewReader(body))
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var m map[string]any
			json.NewDecoder(resp.Body).Decode(&m)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d (%v)", resp.StatusCode, tc.status, m)
			}
			if tc.status == 401 {
				e, ok := m["error"].(map[string]any)
				if !ok || e["code"] != "invalid_api_key" || e["message"] == "" {
					t.Fatalf("not an OpenAI-shaped error: %v", m)
				}
			}
			if tc.path == "/health" {
				want := map[string]any{"status": "ok", "model": "tiny", "running": 0.0, "queued": 0.0}
				if diff := cmp.Diff(want, m); diff != "" {
					t.Errorf("health (-want +got):\n%s", diff)
				}
			}
		})
	}
}

// TestContextLimit: --ctx bounds a request: a longer prompt is refused
// and the reply stops at the limit.
func TestContextLimit(t *testing.T) {
	base, _ := startServerWith(t, Config{Parallel: 2, Context: 16})
	r, m := post(t, base+"/v1/completions", `{"prompt":"`+strings.Repeat("a", 16)+`","max_tokens":1}`)
	if r.StatusCode != 400 {
		t.Fatalf("a prompt of the whole context: status %d (%v)", r.StatusCode, m)
	}
	r, m = post(t, base+"/v1/completions", `{"prompt":"abc","max_tokens":17}`)
	if r.StatusCode != 400 {
		t.Fatalf("max_tokens beyond the context: status %d (%v)", r.StatusCode, m)
	}
	a, err := complete(context.Background(), base, "/v1/completions", `{"prompt":"`+strings.Repeat("a", 10)+`","max_tokens":16,"temperature":1,"seed":4}`, "")
	if err != nil || a.Status != 200 {
		t.Fatalf("%v %+v", err, a)
	}
	if a.Tokens > 6 || (a.Tokens < 6 && a.Finish != "stop") {
		t.Fatalf("%d tokens (finish %q) after a prompt of 10 in a context of 16", a.Tokens, a.Finish)
	}
}
