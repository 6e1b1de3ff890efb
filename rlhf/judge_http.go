package rlhf

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// HTTPJudge asks an OpenAI-compatible chat endpoint (llmlab serve,
// llama.cpp's server, ollama, vLLM, a hosted API) to judge. The question
// goes as one user message (templates that reject a system turn still
// work), at temperature 0 with a small max_tokens, and the verdict is the
// first standalone A or B in the reply (ParseReplyChoice); no
// log-probabilities are needed.
//
// Failures are handled where they are cheap to handle:
//   - a request that times out, fails to connect, or gets 429 or a 5xx is
//     sent again after Backoff, 2·Backoff, 4·Backoff... (at most MaxBackoff,
//     or the server's Retry-After when that is longer), up to Retries times;
//     any other 4xx is the caller's mistake and fails at once with the
//     server's message;
//   - a reply that names neither letter is asked again (at
//     RetryTemperature, since asking a deterministic server the same thing
//     at temperature 0 gets the same reply) up to MalformedRetries times,
//     then fails with the reply quoted;
//   - at most Concurrency requests are in flight at once, however many
//     Compare calls run;
//   - with a Cache, every answer is stored as it arrives and a question
//     asked before is never sent again.
type HTTPJudge struct {
	URL    string // base URL (http://host:port or .../v1) or the full .../chat/completions
	Model  string // the request's "model"; also part of the cache key (the endpoint's URL when empty)
	APIKey string // sent as a Bearer token when set
	Rubric string
	// Margin is the tie band of CombineOrders; the replies give each
	// order probability 0 or 1, so only disagreement makes a tie.
	Margin           float64
	MaxTokens        int           // default 8
	Timeout          time.Duration // per request; default 2 minutes
	Retries          int           // resends after transport errors, 429 and 5xx; default 5 (negative: none)
	MalformedRetries int           // re-asks after a reply naming neither letter; default 2 (negative: none)
	RetryTemperature float64       // temperature of those re-asks; default 0.7
	Backoff          time.Duration // first wait before a resend; default 500ms
	MaxBackoff       time.Duration // longest wait; default 30s
	Concurrency      int           // requests in flight at most; default 4
	Client           *http.Client  // default: a new client (timeouts come from Timeout)
	Cache            *VerdictCache // optional

	once  sync.Once
	sem   chan struct{}
	sleep func(ctx context.Context, d time.Duration) error // tests record the waits

	calls, hits, retries atomic.Int64
}

// Stats reports requests sent, orders answered from the cache, and resends.
func (j *HTTPJudge) Stats() JudgeStats {
	return JudgeStats{Calls: j.calls.Load(), CacheHits: j.hits.Load(), Retries: j.retries.Load()}
}

func (j *HTTPJudge) init() {
	j.once.Do(func() {
		if j.MaxTokens <= 0 {
			j.MaxTokens = 8
		}
		if j.Timeout <= 0 {
			j.Timeout = 2 * time.Minute
		}
		if j.Retries == 0 {
			j.Retries = 5
		}
		if j.MalformedRetries == 0 {
			j.MalformedRetries = 2
		}
		if j.RetryTemperature == 0 {
			j.RetryTemperature = 0.7
		}
		if j.Backoff <= 0 {
			j.Backoff = 500 * time.Millisecond
		}
		if j.MaxBackoff <= 0 {
			j.MaxBackoff = 30 * time.Second
		}
		if j.Concurrency <= 0 {
			j.Concurrency = 4
		}
		if j.Client == nil {
			j.Client = &http.Client{}
		}
		if j.sleep == nil {
			j.sleep = sleepCtx
		}
		j.sem = make(chan struct{}, j.Concurrency)
	})
}

// Endpoint returns the chat completions URL.
func (j *HTTPJudge) Endpoint() string {
	u := strings.TrimRight(j.URL, "/")
	switch {
	case strings.HasSuffix(u, "/chat/completions"):
		return u
	case strings.HasSuffix(u, "/v1"):
		return u + "/chat/completions"
	}
	return u + "/v1/chat/completions"
}

// Compare asks both orders at once (each waits for a slot) and combines.
func (j *HTTPJudge) Compare(ctx context.Context, prompt, a, b string) (Verdict, error) {
	return j.CompareRef(ctx, prompt, "", a, b)
}

// CompareRef is Compare with a reference answer in the question
// (JudgeQuestionRef); the cache keys it too (CacheKeyRef).
func (j *HTTPJudge) CompareRef(ctx context.Context, prompt, reference, a, b string) (Verdict, error) {
	j.init()
	var (
		wg    sync.WaitGroup
		pf    [2]float64
		raw   [2]string
		errs  [2]error
		pairs = [2][2]string{{a, b}, {b, a}}
	)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for k := range pairs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pf[k], raw[k], errs[k] = j.order(ctx, prompt, reference, pairs[k][0], pairs[k][1])
			if errs[k] != nil {
				cancel() // the other order is no use now
			}
		}()
	}
	wg.Wait()
	for k, err := range errs {
		// Report the error that caused the cancellation, not the echo.
		if err != nil && !(errors.Is(err, context.Canceled) && errs[1-k] != nil && !errors.Is(errs[1-k], context.Canceled)) {
			return Verdict{}, err
		}
	}
	v := CombineOrders(pf[0], pf[1], j.Margin)
	v.Raw = raw
	return v, nil
}

// order judges one order: from the cache, or by asking.
func (j *HTTPJudge) order(ctx context.Context, prompt, reference, first, second string) (float64, string, error) {
	key := ""
	if j.Cache != nil {
		name := j.Model
		if name == "" {
			name = j.Endpoint() // the server decides the model: key by the server
		}
		key = CacheKeyRef(name, j.Rubric, prompt, reference, first, second)
		if e, ok := j.Cache.Get(key); ok {
			j.hits.Add(1)
			return e.PFirst, e.Reply, nil
		}
	}
	q := JudgeQuestionRef(j.Rubric, prompt, reference, first, second)
	temp := 0.0
	var reply string
	for try := 0; ; try++ {
		var err error
		if reply, err = j.ask(ctx, q, temp); err != nil {
			return 0, "", err
		}
		c, ok := ParseReplyChoice(reply)
		if ok {
			p := 0.0
			if c == ChoiceA {
				p = 1
			}
			if j.Cache != nil {
				if err := j.Cache.Put(CacheEntry{Key: key, Reply: reply, PFirst: p, Model: j.Model}); err != nil {
					return 0, "", err
				}
			}
			return p, reply, nil
		}
		if try >= max(j.MalformedRetries, 0) {
			return 0, "", &MalformedReplyError{URL: j.Endpoint(), Reply: reply, Tries: try + 1}
		}
		j.retries.Add(1)
		temp = j.RetryTemperature
	}
}

type chatRequest struct {
	Model       string        `json:"model,omitempty"`
	Messages    []chatMessage `json:"messages"`
	Temperature float64       `json:"temperature"`
	MaxTokens   int           `json:"max_tokens"`
	Stream      bool          `json:"stream"`
}

type chatMessage struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

type chatResponse struct {
	Choices []struct {
		Message struct {
			Content string `json:"content"`
		} `json:"message"`
		Text string `json:"text"`
	} `json:"choices"`
}

// MalformedReplyError is a judge that kept answering without naming A or B.
type MalformedReplyError struct {
	URL   string
	Reply string // the last reply
	Tries int
}

func (e *MalformedReplyError) Error() string {
	return fmt.Sprintf("judge %s: the reply %q names neither A nor B (asked %d times)", e.URL, clipText(e.Reply, 200), e.Tries)
}

// HTTPError is a response the judge did not accept.
type HTTPError struct {
	URL    string
	Status int
	Body   string // the server's message, or the start of the body
}

func (e *HTTPError) Error() string {
	return fmt.Sprintf("judge %s: HTTP %d: %s", e.URL, e.Status, e.Body)
}

// ask sends one question, resending on transient failures.
func (j *HTTPJudge) ask(ctx context.Context, question string, temp float64) (string, error) {
	body, err := json.Marshal(chatRequest{Model: j.Model, Temperature: temp, MaxTokens: j.MaxTokens,
		Messages: []chatMessage{{Role: "user", Content: question}}})
	if err != nil {
		return "", err
	}
	for attempt := 0; ; attempt++ {
		reply, retryAfter, err := j.post(ctx, body)
		if err == nil {
			return reply, nil
		}
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		var he *HTTPError
		transient := !errors.As(err, &he) || he.Status == http.StatusTooManyRequests || he.Status >= 500
		if !transient || attempt >= j.Retries {
			if transient {
				return "", fmt.Errorf("%w (gave up after %d tries)", err, attempt+1)
			}
			return "", err
		}
		wait := min(j.Backoff<<min(attempt, 20), j.MaxBackoff)
		wait = max(wait, min(retryAfter, j.MaxBackoff))
		j.retries.Add(1)
		if err := j.sleep(ctx, wait); err != nil {
			return "", err
		}
	}
}

// post sends one request within a concurrency slot and a timeout. It
// returns the reply, or an error with the server's Retry-After.
func (j *HTTPJudge) post(ctx context.Context, body []byte) (string, time.Duration, error) {
	select {
	case j.sem <- struct{}{}:
	case <-ctx.Done():
		return "", 0, ctx.Err()
	}
	defer func() { <-j.sem }()
	j.calls.Add(1)
	rctx, cancel := context.WithTimeout(ctx, j.Timeout)
	defer cancel()
	url := j.Endpoint()
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return "", 0, &HTTPError{URL: url, Status: 400, Body: err.Error()} // a bad URL is not worth retrying
	}
	req.Header.Set("Content-Type", "application/json")
	if j.APIKey != "" {
		req.Header.Set("Authorization", "Bearer "+j.APIKey)
	}
	resp, err := j.Client.Do(req)
	if err != nil {
		return "", 0, fmt.Errorf("judge %s: %w", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return "", 0, fmt.Errorf("judge %s: reading the reply: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		var retryAfter time.Duration
		if s, err := strconv.Atoi(strings.TrimSpace(resp.Header.Get("Retry-After"))); err == nil && s > 0 {
			retryAfter = time.Duration(s) * time.Second
		}
		return "", retryAfter, &HTTPError{URL: url, Status: resp.StatusCode, Body: errorMessage(b)}
	}
	var cr chatResponse
	if err := json.Unmarshal(b, &cr); err != nil {
		return "", 0, &HTTPError{URL: url, Status: resp.StatusCode, Body: "the reply is not chat completion JSON: " + clipText(string(b), 200)}
	}
	if len(cr.Choices) == 0 {
		return "", 0, &HTTPError{URL: url, Status: resp.StatusCode, Body: "the reply has no choices: " + clipText(string(b), 200)}
	}
	c := cr.Choices[0]
	if c.Message.Content != "" {
		return c.Message.Content, 0, nil
	}
	return c.Text, 0, nil
}

// errorMessage pulls the message out of an OpenAI-shaped error body, or
// returns the body's start.
func errorMessage(b []byte) string {
	var e struct {
		Error json.RawMessage `json:"error"`
	}
	if json.Unmarshal(b, &e) == nil && len(e.Error) > 0 {
		var inner struct {
			Message string `json:"message"`
		}
		if json.Unmarshal(e.Error, &inner) == nil && inner.Message != "" {
			return inner.Message
		}
		var s string
		if json.Unmarshal(e.Error, &s) == nil && s != "" { // ollama: {"error":"..."}
			return s
		}
	}
	return clipText(strings.TrimSpace(string(b)), 200)
}

func clipText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
