package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"llmlab/app/serve"
	"llmlab/core/model"
	"llmlab/core/tensor"
)

// benchTok is the serve group's tokenizer: bytes in, and every id out as
// its own short ASCII word, so each generated token streams as one chunk.
// It has no end-of-sequence token: every request runs to max_tokens.
type benchTok struct{}

func (benchTok) Encode(s string, _ bool) []int32 {
	ids := make([]int32, len(s))
	for i := range len(s) {
		ids[i] = int32(s[i])
	}
	return ids
}

func (benchTok) Decode(ids []int32) string {
	b := make([]byte, 0, 6*len(ids))
	for _, id := range ids {
		b = strconv.AppendInt(b, int64(id), 36)
		b = append(b, ' ')
	}
	return string(b)
}

func (benchTok) EOS() int32 { return -1 }

// serveFigures are one load's measurements.
type serveFigures struct {
	tokensPerS float64       // tokens while every client was connected, over that time
	overall    float64       // all tokens over the whole wall time (ramp-up and tail included)
	ttft       time.Duration // median time to first token
	perRequest time.Duration // mean time a request takes
	requests   int

	tokens, allTokens int             // generated tokens: in the window, in all
	window, wall      time.Duration   // the time all clients were connected; the load's wall time
	ttfts             []time.Duration // every request's time to first token
}

// add merges o's rounds into f and recomputes the figures.
func (f *serveFigures) add(o serveFigures) {
	busy := f.perRequest*time.Duration(f.requests) + o.perRequest*time.Duration(o.requests)
	f.tokens, f.allTokens, f.requests = f.tokens+o.tokens, f.allTokens+o.allTokens, f.requests+o.requests
	f.window, f.wall = f.window+o.window, f.wall+o.wall
	f.ttfts = append(f.ttfts, o.ttfts...)
	slices.Sort(f.ttfts)
	f.tokensPerS, f.overall = float64(f.tokens)/f.window.Seconds(), float64(f.allTokens)/f.wall.Seconds()
	f.ttft, f.perRequest = f.ttfts[len(f.ttfts)/2], busy/time.Duration(f.requests)
}

// benchServe serves a randomly initialised cfg model over loopback HTTP
// with slots decoding together and measures, in one run, a single client
// and then clients concurrent streaming clients, each sending perClient
// requests back to back, rounds times alternately (the host may be
// shared: alternating spreads its load over both). Request lengths vary around ntok (from ntok/2 to
// 3ntok/2), and the clients start spread over one request's time, as
// independent users would: arrivals are not in lockstep.
func benchServe(ctx context.Context, cfg model.Config, b tensor.Backend, slots, clients, perClient, ntok, rounds int) (one, many serveFigures, err error) {
	m, err := model.New(cfg, 1)
	if err != nil {
		return one, many, err
	}
	s := serve.New(serve.Config{ModelID: "bench", Model: m, Tok: benchTok{}, Backend: b, Parallel: slots, QueueSize: clients})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return one, many, err
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(l) }()
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		s.Shutdown(sctx)
		<-done
	}()
	url := "http://" + l.Addr().String() + "/v1/completions"
	if _, _, err := streamCompletion(ctx, url, 0, 2, nil); err != nil { // warm up
		return one, many, err
	}
	for range rounds {
		o, err := serveLoad(ctx, url, 1, max(perClient, 2), ntok, 0)
		if err != nil {
			return one, many, err
		}
		one.add(o)
		m, err := serveLoad(ctx, url, clients, perClient, ntok, o.perRequest/time.Duration(clients))
		if err != nil {
			return one, many, err
		}
		many.add(m)
	}
	return one, many, nil
}

// serveLoad runs clients streaming clients of perClient requests each,
// client c starting c·stagger after the first. Its tokens per second
// count the tokens that arrived while every client was connected (from
// the last client's first request to the first client's last answer), so
// the ramp-up and the tail, when fewer clients are left, do not dilute
// the concurrent figure; the overall figure counts them.
func serveLoad(ctx context.Context, url string, clients, perClient, ntok int, stagger time.Duration) (serveFigures, error) {
	var mu sync.Mutex
	var ttfts []time.Duration
	var firstErr error
	var busy time.Duration
	tokens := 0
	stamps := make([][]time.Time, clients) // when each client's tokens arrived
	spans := make([][2]time.Time, clients) // each client's first start and last end
	var wg sync.WaitGroup
	start := time.Now()
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(time.Duration(c) * stagger)
			spans[c][0] = time.Now()
			defer func() { spans[c][1] = time.Now() }()
			for r := range perClient {
				i := c*perClient + r
				want := ntok/2 + (i*37)%(ntok+1) // ntok/2 .. 3ntok/2, mean about ntok
				t0 := time.Now()
				ttft, n, err := streamCompletion(ctx, url, i, want, &stamps[c])
				mu.Lock()
				busy += time.Since(t0)
				tokens += n
				if err == nil && n != want {
					err = fmt.Errorf("bench serve: %d tokens streamed, want %d", n, want)
				}
				if err != nil && firstErr == nil {
					firstErr = err
				}
				ttfts = append(ttfts, ttft)
				mu.Unlock()
				if err != nil {
					return
				}
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	if firstErr != nil {
		return serveFigures{}, firstErr
	}
	t0, t1 := spans[0][0], spans[0][1]
	for _, sp := range spans {
		if sp[0].After(t0) {
			t0 = sp[0]
		}
		if sp[1].Before(t1) {
			t1 = sp[1]
		}
	}
	inWindow := 0
	for _, st := range stamps {
		for _, at := range st {
			if !at.Before(t0) && !at.After(t1) {
				inWindow++
			}
		}
	}
	o := serveFigures{tokens: inWindow, allTokens: tokens, window: t1.Sub(t0), wall: el, ttfts: ttfts,
		perRequest: busy / time.Duration(len(ttfts)), requests: len(ttfts)}
	if o.window <= 0 || inWindow == 0 { // the clients never overlapped
		o.tokens, o.window = tokens, el
	}
	var f serveFigures
	f.add(o)
	return f, nil
}

// streamCompletion sends one streaming completion of ntok tokens and
// returns the time to its first token and the tokens streamed; it appends
// each token's arrival time to stamps when that is set.
func streamCompletion(ctx context.Context, url string, seed, ntok int, stamps *[]time.Time) (time.Duration, int, error) {
	body := fmt.Sprintf(`{"prompt":"Request %d: once upon a time","max_tokens":%d,"temperature":0.8,"seed":%d,"stream":true}`, seed, ntok, seed)
	req, err := http.NewRequestWithContext(ctx, "POST", url, strings.NewReader(body))
	if err != nil {
		return 0, 0, err
	}
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return 0, 0, fmt.Errorf("bench serve: status %s", resp.Status)
	}
	var ttft time.Duration
	n := 0
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok || data == "[DONE]" {
			continue
		}
		var c struct {
			Choices []struct {
				Text string `json:"text"`
			} `json:"choices"`
		}
		if err := json.Unmarshal([]byte(data), &c); err != nil || len(c.Choices) != 1 {
			return 0, 0, fmt.Errorf("bench serve: bad chunk %q", data)
		}
		// A chunk holds the tokens made since the client last read:
		// benchTok writes each as one word and a space.
		k := strings.Count(c.Choices[0].Text, " ")
		now := time.Now()
		if n == 0 && k > 0 {
			ttft = now.Sub(start)
		}
		n += k
		for range k {
			if stamps != nil {
				*stamps = append(*stamps, now)
			}
		}
	}
	return ttft, n, sc.Err()
}
