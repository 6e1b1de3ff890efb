package serve

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"llmlab/core/model"
	"llmlab/core/tensor"
)

type byteTok struct{}

func (byteTok) Encode(s string, _ bool) []int32 {
	out := make([]int32, len(s))
	for i := range len(s) {
		out[i] = int32(s[i])
	}
	return out
}
func (byteTok) Decode(ids []int32) string {
	b := make([]byte, 0, len(ids))
	for _, id := range ids {
		if id < 256 {
			b = append(b, byte(id))
		}
	}
	return string(b)
}
func (byteTok) EOS() int32 { return 256 }

func startServer(t *testing.T, queue int) (string, *Server) {
	t.Helper()
	return startServerWith(t, Config{QueueSize: queue})
}

// startServerWith serves the tiny test model with c's queue, parallel and
// key settings on a loopback port until the test ends.
func startServerWith(t *testing.T, c Config) (string, *Server) {
	t.Helper()
	cfg, err := model.ParseConfig([]byte(`{"model_type":"llama","vocab_size":257,"hidden_size":32,"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,"intermediate_size":48,"max_position_embeddings":256}`))
	if err != nil {
		t.Fatal(err)
	}
	m, err := model.New(cfg, 1)
	if err != nil {
		t.Fatal(err)
	}
	s := New(Config{
		ModelID: "tiny", Model: m, Tok: byteTok{}, Backend: tensor.NewCPU(1), QueueSize: c.QueueSize, MaxBody: 4096,
		Parallel: c.Parallel, APIKey: c.APIKey, Context: c.Context,
		Chat: func(msgs []Message) (string, []string, error) {
			var b strings.Builder
			for _, m := range msgs {
				fmt.Fprintf(&b, "<%s>%s\n", m.Role, m.Content)
			}
			b.WriteString("<assistant>")
			return b.String(), []string{"\n"}, nil
		},
	})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
		// Nothing listens any more.
		if c, err := net.Dial("tcp", l.Addr().String()); err == nil {
			c.Close()
			t.Error("the port still accepts connections after shutdown")
		}
	})
	return "http://" + l.Addr().String(), s
}

func post(t *testing.T, url, body string) (*http.Response, map[string]any) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return resp, m
}

func TestModelsAndCompletions(t *testing.T) {
	base, _ := startServer(t, 4)
	resp, err := http.Get(base + "/v1/models")
	if err != nil {
		t.Fatal(err)
	}
	var models struct {
		Object string `json:"object"`
		Data   []struct {
			ID     string `json:"id"`
			Object string `json:"object"`
		} `json:"data"`
	}
	json.NewDecoder(resp.Body).Decode(&models)
	resp.Body.Close()
	if models.Object != "list" || len(models.Data) != 1 || models.Data[0].ID != "tiny" || models.Data[0].Object != "model" {
		t.Fatalf("models = %+v", models)
	}

	r, m := post(t, base+"/v1/completions", `{"model":"tiny","prompt":"Once","max_tokens":5,"temperature":0}`)
	if r.StatusCode != 200 {
		t.Fatalf("status %d: %v", r.StatusCode, m)
	}
	if m["object"] != "text_completion" || m["model"] != "tiny" {
		t.Errorf("object/model = %v/%v", m["object"], m["model"])
	}
	choices := m["choices"].([]any)
	c0 := choices[0].(map[string]any)
	if _, ok := c0["text"].(string); !ok || c0["index"].(float64) != 0 {
		t.Errorf("choice = %v", c0)
	}
	if fr := c0["finish_reason"]; fr != "length" && fr != "stop" {
		t.Errorf("finish_reason = %v", fr)
	}
	u := m["usage"].(map[string]any)
	if u["prompt_tokens"].(float64) != 4 || u["total_tokens"].(float64) != u["prompt_tokens"].(float64)+u["completion_tokens"].(float64) {
		t.Errorf("usage = %v", u)
	}

	r, m = post(t, base+"/v1/chat/completions", `{"messages":[{"role":"user","content":"hi"}],"max_tokens":4,"temperature":0}`)
	if r.StatusCode != 200 {
		t.Fatalf("chat status %d: %v", r.StatusCode, m)
	}
	msg := m["choices"].([]any)[0].(map[string]any)["message"].(map[string]any)
	if msg["role"] != "assistant" || m["object"] != "chat.completion" {
		t.Errorf("chat = %v", m)
	}
}

func TestStreaming(t *testing.T) {
	base, _ := startServer(t, 4)
	resp, err := http.Post(base+"/v1/chat/completions", "application/json",
		strings.NewReader(`{"messages":[{"role":"user","content":"hi"}],"max_tokens":6,"temperature":0,"stream":true}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
		t.Fatalf("content type %q", ct)
	}
	sc := bufio.NewScanner(resp.Body)
	var chunks int
	var sawDone, sawFinish bool
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			continue
		}
		if !strings.HasPrefix(line, "data: ") {
			t.Fatalf("bad SSE line %q", line)
		}
		data := strings.TrimPrefix(line, "data: ")
		if data == "[DONE]" {
			sawDone = true
			break
		}
		var c map[string]any
		if err := json.Unmarshal([]byte(data), &c); err != nil {
			t.Fatalf("chunk %q: %v", data, err)
		}
		if c["object"] != "chat.completion.chunk" {
			t.Errorf("object %v", c["object"])
		}
		ch := c["choices"].([]any)[0].(map[string]any)
		if ch["finish_reason"] != nil {
			sawFinish = true
		}
		chunks++
	}
	if !sawDone || !sawFinish || chunks < 2 {
		t.Fatalf("chunks %d, done %v, finish %v", chunks, sawDone, sawFinish)
	}
}

func TestBadRequests(t *testing.T) {
	base, _ := startServer(t, 4)
	for _, tc := range []struct {
		name, path, body string
		status           int
	}{
		{"bad json", "/v1/completions", `{"prompt":`, 400},
		{"unknown model", "/v1/completions", `{"model":"gpt-9","prompt":"x"}`, 400},
		{"prompt not a string", "/v1/completions", `{"prompt":{"a":1}}`, 400},
		{"empty messages", "/v1/chat/completions", `{"messages":[]}`, 400},
		{"bad temperature", "/v1/completions", `{"prompt":"x","temperature":-1}`, 400},
		{"too large", "/v1/completions", `{"prompt":"` + strings.Repeat("a", 5000) + `"}`, 413},
		{"unknown route", "/v1/embeddings", `{}`, 404},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, m := post(t, base+tc.path, tc.body)
			if r.StatusCode != tc.status {
				t.Fatalf("status %d, want %d (%v)", r.StatusCode, tc.status, m)
			}
			e, ok := m["error"].(map[string]any)
			if !ok || e["message"] == "" {
				t.Fatalf("no OpenAI-shaped error: %v", m)
			}
		})
	}
}

func TestOverloadGets429(t *testing.T) {
	base, s := startServer(t, 1)
	// Hold the generation lock so requests pile up in the queue.
	s.run.Lock()
	var wg sync.WaitGroup
	codes := make(chan int, 6)
	for i := 0; i < 6; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, _ := post(t, base+"/v1/completions", `{"prompt":"x","max_tokens":2,"temperature":0}`)
			codes <- r.StatusCode
		}()
	}
	// Wait until the queue is full, then release.
	deadline := time.Now().Add(5 * time.Second)
	for len(s.slots) < cap(s.slots) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	s.run.Unlock()
	wg.Wait()
	close(codes)
	n429, n200 := 0, 0
	for c := range codes {
		switch c {
		case 429:
			n429++
		case 200:
			n200++
		default:
			t.Errorf("unexpected status %d", c)
		}
	}
	if n429 == 0 || n200 == 0 {
		t.Fatalf("200s %d, 429s %d: want both", n200, n429)
	}
}
