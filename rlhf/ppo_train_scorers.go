package rlhf

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"sync"
	"time"

	"llmlab/core/autograd"
	"llmlab/core/data"
	"llmlab/core/tensor"
)

// Scorer gives each rollout of a PPO iteration its score, the reward of
// the whole response: dst[i] for rs[i].
type Scorer interface {
	Scores(ctx context.Context, rs []Rollout, dst []float32) error
}

var (
	_ Scorer = RuleScorer{}
	_ Scorer = (*RMScorer)(nil)
	_ Scorer = (*HTTPScorer)(nil)
	_ Scorer = ScorerFunc(nil)
)

// ScorerFunc adapts a function to Scorer.
type ScorerFunc func(ctx context.Context, rs []Rollout, dst []float32) error

func (f ScorerFunc) Scores(ctx context.Context, rs []Rollout, dst []float32) error {
	return f(ctx, rs, dst)
}

// RuleScorer scores with a verifiable Reward (as GRPO does) on the
// response text and the task's answer.
type RuleScorer struct{ Reward Reward }

func (s RuleScorer) Scores(_ context.Context, rs []Rollout, dst []float32) error {
	for i, r := range rs {
		dst[i] = s.Reward.Score(r.Text, r.Answer)
	}
	return nil
}

// RMScorer scores with a reward model (RewardModel.Rewards, read at the
// last token of prompt + response).
type RMScorer struct {
	RM   *RewardModel
	B    tensor.Backend
	Pad  int32
	Rows int // rows per forward; 0: 8
	// Encode builds the row the reward model reads for a rollout, labels
	// on the response (as data.BuildPairs lays out its training rows): for
	// a reward model with its own tokenizer or template. nil uses the
	// rollout's own tokens, prompt then response.
	Encode func(r Rollout) (data.Example, error)
	tape   *autograd.Tape
}

func (s *RMScorer) Scores(ctx context.Context, rs []Rollout, dst []float32) error {
	if s.tape == nil {
		s.tape = autograd.NewTape(s.B)
		s.tape.NoGrad = true
	}
	rows := s.Rows
	if rows <= 0 {
		rows = 8
	}
	ctxLen := s.RM.M.Cfg.MaxPos
	for lo := 0; lo < len(rs); lo += rows {
		if err := ctx.Err(); err != nil {
			return err
		}
		hi := min(lo+rows, len(rs))
		exs := make([]data.Example, 0, hi-lo)
		longest := 0
		for i := lo; i < hi; i++ {
			var e data.Example
			if s.Encode != nil {
				var err error
				if e, err = s.Encode(rs[i]); err != nil {
					return fmt.Errorf("reward model: response %d: %w", i, err)
				}
			} else {
				e.IDs = append(append([]int32(nil), rs[i].Prompt...), rs[i].Response...)
				e.Labels = make([]int32, len(e.IDs))
				for k := range e.Labels {
					e.Labels[k] = data.IgnoreIndex
				}
				copy(e.Labels[len(rs[i].Prompt):], rs[i].Response)
			}
			if len(e.IDs) > ctxLen {
				// Keep the end: the reward head reads the last token.
				cut := len(e.IDs) - ctxLen
				e.IDs, e.Labels = e.IDs[cut:], e.Labels[cut:]
			}
			if e.Trained() == 0 {
				return fmt.Errorf("reward model: response %d is empty: nothing to score", i)
			}
			exs = append(exs, e)
			longest = max(longest, len(e.IDs))
		}
		b, err := data.Collate(exs, longest, s.Pad)
		if err != nil {
			return fmt.Errorf("reward model: %w", err)
		}
		s.tape.Reset()
		out, err := s.RM.Rewards(s.tape, b)
		if err != nil {
			return fmt.Errorf("reward model: %w", err)
		}
		copy(dst[lo:hi], out.Value.Float32s())
	}
	s.tape.Reset()
	return nil
}

// HTTPScorer asks a web service for each score: it POSTs
//
//	{"prompt": PromptText, "response": Text, "answer": Answer}
//
// ("answer" only when the task has one) to URL and expects
// {"reward": number}. Network errors, 5xx and 429 answers are retried
// with a doubling wait; any other status, or an answer that is not that
// JSON, is an error that quotes what came back.
type HTTPScorer struct {
	URL     string
	Client  *http.Client  // nil: a client with Timeout
	Timeout time.Duration // per request; 0: 30s
	Retries int           // extra tries after a failure that may pass
	Backoff time.Duration // first wait between tries; 0: 200ms
	Workers int           // requests in flight at once; 0: 4
}

type httpScoreRequest struct {
	Prompt   string `json:"prompt"`
	Response string `json:"response"`
	Answer   string `json:"answer,omitempty"`
}

// retryable marks a failure another try may fix.
type retryable struct{ err error }

func (e retryable) Error() string { return e.err.Error() }
func (e retryable) Unwrap() error { return e.err }

func (s *HTTPScorer) Scores(ctx context.Context, rs []Rollout, dst []float32) error {
	client := s.Client
	if client == nil {
		to := s.Timeout
		if to <= 0 {
			to = 30 * time.Second
		}
		client = &http.Client{Timeout: to}
	}
	workers := s.Workers
	if workers <= 0 {
		workers = 4
	}
	errs := make([]error, len(rs))
	var wg sync.WaitGroup
	next := make(chan int)
	for range min(workers, len(rs)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				dst[i], errs[i] = s.scoreOne(ctx, client, rs[i])
			}
		}()
	}
	for i := range rs {
		next <- i
	}
	close(next)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return fmt.Errorf("reward endpoint %s: response %d: %w", s.URL, i, err)
		}
	}
	return nil
}

func (s *HTTPScorer) scoreOne(ctx context.Context, client *http.Client, r Rollout) (float32, error) {
	body, err := json.Marshal(httpScoreRequest{Prompt: r.PromptText, Response: r.Text, Answer: r.Answer})
	if err != nil {
		return 0, err
	}
	wait := s.Backoff
	if wait <= 0 {
		wait = 200 * time.Millisecond
	}
	for try := 0; ; try++ {
		v, err := s.post(ctx, client, body)
		var re retryable
		if err == nil || !errors.As(err, &re) || try >= s.Retries || ctx.Err() != nil {
			if err != nil && try > 0 {
				err = fmt.Errorf("after %d tries: %w", try+1, err)
			}
			return v, err
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(wait):
		}
		wait *= 2
	}
}

func (s *HTTPScorer) post(ctx context.Context, client *http.Client, body []byte) (float32, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return 0, retryable{err}
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if err != nil {
		return 0, retryable{err}
	}
	if resp.StatusCode != http.StatusOK {
		err := fmt.Errorf("status %s: %s", resp.Status, quote(got))
		if resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests {
			return 0, retryable{err}
		}
		return 0, err
	}
	var ans struct {
		Reward *float64 `json:"reward"`
	}
	if err := json.Unmarshal(got, &ans); err != nil || ans.Reward == nil {
		return 0, fmt.Errorf("the answer is not JSON {\"reward\": number}: %s", quote(got))
	}
	if math.IsNaN(*ans.Reward) || math.IsInf(*ans.Reward, 0) || math.Abs(*ans.Reward) > math.MaxFloat32 {
		return 0, fmt.Errorf("reward %v is not a finite float32", *ans.Reward)
	}
	return float32(*ans.Reward), nil
}

// quote shows at most 200 bytes of a body.
func quote(b []byte) string {
	if len(b) > 200 {
		return fmt.Sprintf("%q...", b[:200])
	}
	return fmt.Sprintf("%q", b)
}
