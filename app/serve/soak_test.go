package serve

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"sync"
	"testing"
	"time"
)

// TestSoak runs clients that send plain and streamed requests with random
// settings and hang up at random, for LLMLAB_SOAK (a duration; 3s unless
// set), and checks that every request ends exactly once: a complete
// answer (one finish, one [DONE]), a 429, or a disconnect its client
// made; the server's counts match and its running and queued counts
// return to zero.
func TestSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("soak test: skipped under -short")
	}
	dur := 3 * time.Second
	if v := os.Getenv("LLMLAB_SOAK"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("LLMLAB_SOAK=%q: %v", v, err)
		}
		dur = d
	}
	base, s := startServerWith(t, Config{Parallel: 4, QueueSize: 4})
	const clients = 12
	var mu sync.Mutex
	counts := map[string]int{}
	deadline := time.Now().Add(dur)
	var wg sync.WaitGroup
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(c), 7))
			for i := 0; time.Now().Before(deadline); i++ {
				stream := rng.IntN(2) == 0
				path, body := "/v1/completions", fmt.Sprintf(`{"prompt":"client %d request %d","max_tokens":%d,"temperature":%.2f,"top_k":%d,"seed":%d,"stream":%v}`,
					c, i, 1+rng.IntN(40), rng.Float64()*1.5, rng.IntN(50), rng.Uint64()>>12, stream)
				if rng.IntN(4) == 0 {
					path, body = "/v1/chat/completions", fmt.Sprintf(`{"messages":[{"role":"user","content":"hi %d"}],"max_tokens":%d,"stream":%v,"seed":%d}`,
						i, 1+rng.IntN(30), stream, i)
				}
				ctx, cancel := context.WithCancel(context.Background())
				hangUp := rng.IntN(3) == 0
				if hangUp {
					time.AfterFunc(time.Duration(rng.IntN(20000))*time.Microsecond, cancel)
				}
				a, err := complete(ctx, base, path, body, "")
				cancel()
				outcome := ""
				switch {
				case err == nil && a.Status == 200 && (a.Finish == "stop" || a.Finish == "length"):
					outcome = "answered"
				case err == nil && a.Status == 429:
					outcome = "busy (429)"
					time.Sleep(time.Duration(2+rng.IntN(8)) * time.Millisecond) // back off
				case err != nil && hangUp && errors.Is(err, context.Canceled):
					outcome = "hung up"
				default:
					outcome = "broken"
					t.Errorf("client %d request %d (%s): %+v, %v", c, i, body, a, err)
				}
				mu.Lock()
				counts[outcome]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	waitIdle(t, s)
	sent := counts["answered"] + counts["busy (429)"] + counts["hung up"] + counts["broken"]
	t.Logf("%v: %d requests from %d clients: %v; server: %d submitted, %d answered, %d abandoned",
		dur, sent, clients, counts, s.submitted.Load(), s.answered.Load(), s.abandoned.Load())
	// A client can hang up after the server finished its answer, so the
	// server may count more answers than clients read, never fewer.
	if got, want := s.answered.Load(), int64(counts["answered"]); got < want || got > want+int64(counts["hung up"]) {
		t.Errorf("server answered %d, clients read %d complete answers and hung up %d times", got, want, counts["hung up"])
	}
	if got, want := s.submitted.Load(), int64(counts["answered"]+counts["hung up"]); got > want {
		t.Errorf("server took %d requests; clients sent %d that were not refused", got, want)
	}
	if counts["answered"] == 0 || counts["hung up"] == 0 {
		t.Errorf("the soak never exercised both answers and hang-ups: %v", counts)
	}
}
